// Command gitops-health evaluates Kubernetes objects with the health code that Flux and
// Argo CD run, so e2b-operator's tests check its GitOps health against the real clients:
//
//   - kstatus status.Compute from sigs.k8s.io/cli-utils and from Flux's fork
//     github.com/fluxcd/cli-utils (what `wait: true` in a Flux Kustomization uses);
//   - Flux's CEL status reader for a Kustomization's healthCheckExprs
//     (github.com/fluxcd/pkg/runtime/cel, as kustomize-controller builds it);
//   - Argo CD's health.GetResourceHealth with the resource overrides its settings manager
//     reads from an argocd-cm ConfigMap (Lua checks run by argo-cd's util/lua VM).
//
// Input (stdin, or the file named by the only argument), one JSON document:
//
//	{"argocdCM": {"resource.customizations.health.<group>_<Kind>": "<lua>", ...},
//	 "healthCheckExprs": [{"apiVersion": ..., "kind": ..., "current": ..., ...}],
//	 "objects": [<object>, ...]}
//
// Output (stdout): {"results": [{"kstatus": V, "fluxKstatus": V, "fluxCEL": V, "argocd": V}]}
// in the order of the objects, each V being {"status", "message", "error"}.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"github.com/argoproj/argo-cd/gitops-engine/v3/pkg/health"
	argocommon "github.com/argoproj/argo-cd/v3/common"
	"github.com/argoproj/argo-cd/v3/util/lua"
	"github.com/argoproj/argo-cd/v3/util/settings"
	fluxstatus "github.com/fluxcd/cli-utils/pkg/kstatus/status"
	"github.com/fluxcd/pkg/apis/kustomize"
	"github.com/fluxcd/pkg/runtime/cel"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes/fake"
	kstatus "sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

const argocdNamespace = "argocd"

type request struct {
	ArgocdCM         map[string]string             `json:"argocdCM"`
	HealthCheckExprs []kustomize.CustomHealthCheck `json:"healthCheckExprs"`
	Objects          []json.RawMessage             `json:"objects"`
}

type verdict struct {
	Status  string `json:"status"`
	Message string `json:"message"`
	Error   string `json:"error,omitempty"`
}

type result struct {
	Kstatus     verdict `json:"kstatus"`
	FluxKstatus verdict `json:"fluxKstatus"`
	FluxCEL     verdict `json:"fluxCEL"`
	Argocd      verdict `json:"argocd"`
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "gitops-health:", err)
		os.Exit(1)
	}
}

func run() error {
	in := io.Reader(os.Stdin)
	if len(os.Args) == 2 {
		f, err := os.Open(os.Args[1])
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	}
	var req request
	if err := json.NewDecoder(in).Decode(&req); err != nil {
		return fmt.Errorf("reading the request: %w", err)
	}
	ctx := context.Background()
	overrides, err := argocdOverrides(ctx, req.ArgocdCM)
	if err != nil {
		return err
	}
	newCELReader, err := cel.NewStatusReader(req.HealthCheckExprs)
	if err != nil {
		return fmt.Errorf("healthCheckExprs: %w", err)
	}
	celReader := newCELReader(nil)
	results := make([]result, 0, len(req.Objects))
	for i, raw := range req.Objects {
		// Decoded as a client decodes an API response: integers become int64.
		obj := &unstructured.Unstructured{}
		if err := obj.UnmarshalJSON(raw); err != nil {
			return fmt.Errorf("objects[%d]: %w", i, err)
		}
		var r result
		r.Kstatus = upstreamKstatus(obj.DeepCopy())
		r.FluxKstatus = fluxKstatus(obj.DeepCopy())
		if len(req.HealthCheckExprs) > 0 {
			rs, err := celReader.ReadStatusForObject(ctx, nil, obj.DeepCopy())
			switch {
			case err != nil:
				r.FluxCEL = verdict{Status: "Unknown", Error: err.Error()}
			default:
				r.FluxCEL = verdict{Status: rs.Status.String(), Message: rs.Message}
				if rs.Error != nil {
					r.FluxCEL.Error = rs.Error.Error()
				}
			}
		}
		hs, err := health.GetResourceHealth(obj.DeepCopy(), overrides)
		if hs != nil {
			r.Argocd = verdict{Status: string(hs.Status), Message: hs.Message}
		}
		if err != nil {
			r.Argocd.Error = err.Error()
		}
		results = append(results, r)
	}
	return json.NewEncoder(os.Stdout).Encode(map[string][]result{"results": results})
}

// argocdOverrides reads the resource overrides the way the application controller does:
// an argocd-cm ConfigMap through argo-cd's settings manager.
func argocdOverrides(ctx context.Context, data map[string]string) (lua.ResourceHealthOverrides, error) {
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{
			Name:      argocommon.ArgoCDConfigMapName,
			Namespace: argocdNamespace,
			Labels:    map[string]string{"app.kubernetes.io/part-of": "argocd"},
		},
		Data: data,
	}
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name:      argocommon.ArgoCDSecretName,
			Namespace: argocdNamespace,
			Labels:    map[string]string{"app.kubernetes.io/part-of": "argocd"},
		},
	}
	mgr := settings.NewSettingsManager(ctx, fake.NewClientset(cm, secret), argocdNamespace)
	overrides, err := mgr.GetResourceOverrides()
	if err != nil {
		return nil, fmt.Errorf("argocd-cm: %w", err)
	}
	return lua.ResourceHealthOverrides(overrides), nil
}

// upstreamKstatus is kstatus from kubernetes-sigs/cli-utils.
func upstreamKstatus(obj *unstructured.Unstructured) verdict {
	res, err := kstatus.Compute(obj)
	if err != nil {
		return verdict{Status: "Unknown", Error: err.Error()}
	}
	return verdict{Status: string(res.Status), Message: res.Message}
}

// fluxKstatus is kstatus from Flux's fork, what `wait: true` uses without healthCheckExprs.
func fluxKstatus(obj *unstructured.Unstructured) verdict {
	res, err := fluxstatus.Compute(obj)
	if err != nil {
		return verdict{Status: "Unknown", Error: err.Error()}
	}
	return verdict{Status: string(res.Status), Message: res.Message}
}
