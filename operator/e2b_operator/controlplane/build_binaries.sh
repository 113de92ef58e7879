#!/usr/bin/env bash
# Build kube-apiserver, kube-controller-manager, kubectl and etcd from the Go module proxy
# into OUT (a cache directory keyed by version). Usage:
#   build_binaries.sh OUT K8S_VERSION ETCD_VERSION
# k8s.io/kubernetes replaces its staging modules with local paths, so it cannot be
# `go install`ed: a throwaway wrapper module replaces each staging module with its
# published v0.X.Y tag. etcd gets its own wrapper so version selection stays apart.
set -euo pipefail
out=$1 k8s=$2 etcd=$3
staging=v0.${k8s#v1.}
minor=$(cut -d. -f2 <<<"$k8s")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"
export CGO_ENABLED=0 GOFLAGS=-mod=mod

echo ">> kube-apiserver, kube-controller-manager, kubectl $k8s (first build takes 10-20 minutes on 2 cores)"
mkdir "$work/kube" && cd "$work/kube"
go mod init local/kubebin >/dev/null 2>&1
go mod edit -go=1.25.0
printf 'godebug default=go1.%s\n' "$((minor - 10))" >>go.mod
kmod=$(go mod download -json "k8s.io/kubernetes@$k8s" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
for name in $(sed -n 's#^\s*k8s.io/\([a-z0-9-]*\) => ./staging/.*#\1#p' "$kmod"); do
  go mod edit -replace="k8s.io/$name=k8s.io/$name@$staging"
done
go get "k8s.io/kubernetes@$k8s" >/dev/null
ldflags="-s -w"
for kv in "gitVersion=$k8s" gitMajor=1 "gitMinor=$minor" gitTreeState=clean; do
  ldflags+=" -X k8s.io/component-base/version.$kv"
done
go build -trimpath -ldflags "$ldflags" -o "$out/" \
  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kubectl

echo ">> etcd $etcd"
mkdir "$work/etcd" && cd "$work/etcd"
go mod init local/etcdbin >/dev/null 2>&1
go get "go.etcd.io/etcd/server/v3@$etcd" >/dev/null
go build -trimpath -ldflags "-s -w" -o "$out/etcd" go.etcd.io/etcd/server/v3
echo ">> built"
