// Package registryauth is the one place that reads registry credentials: it
// parses a kubernetes.io/dockerconfigjson (or legacy dockercfg) Secret, writes
// the docker config.json file buildah's --authfile reads, and offers the same
// credentials to go-containerregistry as an authn.Keychain. Credentials never
// leave it through argv, environment, error messages or fmt verbs.
package registryauth
