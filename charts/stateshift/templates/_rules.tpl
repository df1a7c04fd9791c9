{{/* stateshift's alert rules, shared by the host's PrometheusRule and the
     one delivered to the members (agents only). Each alert says what is
     at stake and where to look; docs/operations.md has the runbook. The
     thresholds are monitoring.prometheusRule values. */}}

{{- define "stateshift.rules.controller" -}}
{{- $r := .Values.monitoring.prometheusRule -}}
- name: stateshift.dataloss
  rules:
    - alert: StateshiftCheckpointStale
      # The data-loss window: what a failover of the cluster now would lose.
      expr: |
        max by (namespace, policy, kind, workload, cluster) (stateshift_checkpoint_age_seconds)
          > on (namespace, policy) group_left ()
        ({{ $r.staleIntervals }} * max by (namespace, policy) (stateshift_checkpoint_interval_seconds))
      for: 1m
      labels:
        severity: {{ $r.severity.critical }}
      annotations:
        summary: {{`'{{ $labels.kind }} {{ $labels.namespace }}/{{ $labels.workload }}: latest verified checkpoint on {{ $labels.cluster }} is {{ $value | humanizeDuration }} old'`}}
        description: {{ printf "A failover of the cluster now loses everything since then (more than %v schedule intervals of its CheckpointPolicy). Look at the Protected condition in the policy's status.workloads, the newest Checkpoints (kubectl get ckpt -n NAMESPACE) and the agents of that cluster." $r.staleIntervals | quote }}
    - alert: StateshiftWorkloadUnprotected
      # No verified checkpoint of the current template, or failing ones.
      expr: |
        max by (namespace, policy, kind, workload, reason) (stateshift_workload_protected{reason=~"NoCheckpoint|Failing"}) == 0
      for: {{ $r.unprotectedFor }}
      labels:
        severity: {{ $r.severity.critical }}
      annotations:
        summary: {{`'{{ $labels.kind }} {{ $labels.namespace }}/{{ $labels.workload }} is not protected: {{ $labels.reason }}'`}}
        description: "A move now starts the workload from its image: its process state is lost. kubectl stateshift status, or the Protected condition in the CheckpointPolicy's status.workloads, says why."
    - alert: StateshiftRestorePlanDisarmed
      expr: |
        max by (namespace, policy, kind, workload) (stateshift_workload_armed) == 0
      for: {{ $r.disarmedFor }}
      labels:
        severity: {{ $r.severity.warning }}
      annotations:
        summary: {{`'{{ $labels.kind }} {{ $labels.namespace }}/{{ $labels.workload }}: no restore plan armed'`}}
        description: "An unplanned move (failover, eviction) now starts the workload cold. A template change disarms the plan until a checkpoint of the new template is verified; the workload's message in the CheckpointPolicy status says why."
    - alert: StateshiftMigrationStuck
      expr: |
        max by (namespace, migration, kind, workload, trigger, phase) (stateshift_migration_unfinished_seconds) > {{ $r.migrationStuckSeconds }}
      for: 1m
      labels:
        severity: {{ $r.severity.warning }}
      annotations:
        summary: {{`'Migration {{ $labels.namespace }}/{{ $labels.migration }} ({{ $labels.trigger }}) has run {{ $value | humanizeDuration }}, now {{ $labels.phase }}'`}}
        description: "Every phase has a deadline (spec.phaseTimeout); a Migration that outlives several is stuck. kubectl stateshift describe migration NAME shows its timeline."
    - alert: StateshiftMigrationNotRestored
      expr: |
        sum by (trigger, outcome) (increase(stateshift_migrations_total{outcome=~"FellBack|Failed"}[1h])) > 0
      labels:
        severity: {{ $r.severity.warning }}
      annotations:
        summary: {{`'{{ $value | humanize }} {{ $labels.trigger }} migration(s) {{ $labels.outcome }} in the last hour'`}}
        description: "The workload moved without its process state (FellBack: started cold) or did not move (Failed). The Migration's conditions and Events say why."
{{- end -}}

{{- define "stateshift.rules.agent" -}}
{{- $r := .Values.monitoring.prometheusRule -}}
- name: stateshift.agents
  rules:
    - alert: StateshiftCheckpointPushesFailing
      expr: |
        sum by (namespace, pod, reason) (increase(stateshift_agent_push_failures_total[15m])) >= {{ $r.pushFailures }}
      labels:
        severity: {{ $r.severity.warning }}
      annotations:
        summary: {{`'Checkpoint agent {{ $labels.pod }}: {{ $value | humanize }} failed pushes in 15m ({{ $labels.reason }})'`}}
        description: "Checkpoints of this node do not reach the registry verified, so the data-loss window of its workloads grows. CredentialsInvalid: the registry Secret; PushFailed/PushTimeout: the registry's reachability and quota; VerifyFailed: the registry serves something else than was pushed."
{{- end -}}
