package chart

import "testing"

// A scrape in the shape the controller and an agent serve (label names
// and values as they export them; the e2e test TestMonitoringAlertRules
// takes them from the local environment instead).
const controllerScrape = `# HELP stateshift_checkpoint_age_seconds x
# TYPE stateshift_checkpoint_age_seconds gauge
stateshift_checkpoint_age_seconds{cluster="member1",kind="Deployment",namespace="shop",policy="protect",workload="web"} 4.2
stateshift_checkpoint_interval_seconds{namespace="shop",policy="protect"} 10
stateshift_workload_protected{kind="Deployment",namespace="shop",policy="protect",reason="Protected",workload="web"} 1
stateshift_workload_armed{kind="Deployment",namespace="shop",policy="protect",workload="web"} 1
stateshift_migration_unfinished_seconds{kind="Deployment",migration="to-member2",namespace="shop",phase="Checkpointing",trigger="Manual",workload="web"} 1.5
stateshift_migrations_total{outcome="FellBack",trigger="Manual"} 0
stateshift_migrations_total{outcome="Restored",trigger="Manual"} 2
`

const agentScrape = `stateshift_agent_push_failures_total{reason="PushFailed"} 0
stateshift_agent_push_failures_total{reason="VerifyFailed"} 0
stateshift_build_info{binary="checkpoint-agent",goversion="go1.26",version="dev"} 1
`

func TestAlertRulesFire(t *testing.T) {
	c, err := ParseScrape([]byte(controllerScrape))
	if err != nil {
		t.Fatal(err)
	}
	a, err := ParseScrape([]byte(agentScrape))
	if err != nil {
		t.Fatal(err)
	}
	CheckAlertRules(t, Scrapes{Controller: c, Agent: a, AgentNamespace: "stateshift-system", AgentPod: "stateshift-checkpoint-agent-x1"})
}

func TestParseScrape(t *testing.T) {
	got, err := ParseScrape([]byte("# HELP x y\nm_total{a=\"1\",b=\"q\\\"u\\\\o\\nte\"} 3 1700000000\nplain 2.5e+06\n"))
	if err != nil || len(got) != 2 || got[0].Labels["b"] != "q\"u\\o\nte" || got[0].Value != 3 || got[1].Name != "plain" || got[1].Value != 2.5e6 {
		t.Fatalf("%+v %v", got, err)
	}
	if _, err := ParseScrape([]byte("m{a=\"1} 3\n")); err == nil {
		t.Fatal("an unterminated label value parsed")
	}
}
