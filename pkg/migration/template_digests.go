package migration

import (
	"sync"

	"sigs.k8s.io/controller-runtime/pkg/client"
)

// templateDigests remembers each template version's hash and images
// (TemplateHash, templateImagesJSON). Every policy reconcile of the three
// policy controllers builds a workload for each template of its namespace,
// and computing them converts the whole template to unstructured: at
// 1,000 workloads that conversion was 15% of the controller's CPU during
// a round, before the garbage collection it caused. A template's version is its UID
// and resourceVersion, so a changed template is computed again.
type templateDigests struct {
	mu      sync.Mutex
	entries map[string]templateDigest
}

type templateDigest struct {
	resourceVersion, hash, images string
}

// maxTemplateDigests bounds the memory: past it the cache starts empty
// again (a deleted template's entry is otherwise never dropped).
const maxTemplateDigests = 50000

var digests = &templateDigests{entries: map[string]templateDigest{}}

// key names a template across versions; "" (not cached) for an object
// without UID or resourceVersion (not read from an API server).
func (d *templateDigests) key(kind string, obj client.Object) string {
	if obj.GetUID() == "" || obj.GetResourceVersion() == "" {
		return ""
	}
	return kind + "/" + obj.GetNamespace() + "/" + obj.GetName() + "/" + string(obj.GetUID())
}

func (d *templateDigests) get(kind string, obj client.Object) (hash, images string, ok bool) {
	k := d.key(kind, obj)
	if k == "" {
		return "", "", false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	e, ok := d.entries[k]
	if !ok || e.resourceVersion != obj.GetResourceVersion() {
		return "", "", false
	}
	return e.hash, e.images, true
}

func (d *templateDigests) put(kind string, obj client.Object, hash, images string) {
	k := d.key(kind, obj)
	if k == "" {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.entries) >= maxTemplateDigests {
		d.entries = map[string]templateDigest{}
	}
	d.entries[k] = templateDigest{resourceVersion: obj.GetResourceVersion(), hash: hash, images: images}
}
