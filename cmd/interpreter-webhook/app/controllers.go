package app

import (
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/stateshift/stateshift/cmd/interpreter-webhook/app/options"
	"github.com/stateshift/stateshift/pkg/migration"
)

// Controllers are the control-plane reconcilers the command adds to the
// manager when it talks to a Karmada API server: the migration controller
// (CheckpointPolicy, Migration, cordon detection) and the admission
// webhook that keeps a person's Migration inside its workload's placement
// (migration.PlacementWebhookPath). Without an API server the webhook runs
// alone.
func Controllers(o *options.Options) []func(manager.Manager) error {
	if o.RestConfig == nil {
		return nil
	}
	return []func(manager.Manager) error{func(m manager.Manager) error {
		// Pods are found through Karmada's cluster proxy; registry
		// credentials Secrets are read from --secret-namespace.
		err := migration.SetupWithManager(m, nil, migration.Options{
			SecretNamespace:  o.SecretNamespace,
			WatchClusters:    true,
			ReconcileTimeout: o.ReconcileTimeout,
			ConcurrentSyncs:  o.ConcurrentSyncs,
			Controllers:      o.Controllers,

			RequireRepositoryAllowlist:  o.RequireRepositoryAllowlist,
			ScheduledCheckpointDeferral: o.ScheduledCheckpointDeferral,
			CheckpointDelivery:          o.CheckpointDelivery,
		})
		if err != nil {
			return err
		}
		// SetupWithManager added Karmada's kinds to the scheme.
		m.GetWebhookServer().Register(migration.PlacementWebhookPath, migration.NewPlacementWebhook(m.GetAPIReader(), m.GetScheme()))
		return nil
	}}
}
