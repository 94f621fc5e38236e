#!/usr/bin/env bash
# Validate every manifest in k8s/ offline against fixed Kubernetes versions' OpenAPI schemas.
#
# kubernetes-validate (PyPI) ships the schemas of each Kubernetes version inside the package,
# so after the one-time install into a cached venv nothing is fetched. --strict rejects
# fields the schema does not know (a misspelt `readOnlyRootFileSystem` fails instead of
# being silently dropped by the API server). A document whose kind has no schema (a typo in
# apiVersion or kind) is only a warning to the tool: here it is an error, except for
# kustomization.yaml, which is checked by hand below.
#
# What a schema cannot see (exit codes in podFailurePolicy, env var names) is checked by
# tests/it/k8s.rs against the binary's own tables.
#
#   bash tests/tools/validate-k8s.sh [DIR]      # DIR defaults to k8s/
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
dir="${1:-$root/k8s}"

# The oldest Kubernetes the manifests claim (native sidecars, podFailurePolicy on by
# default) and a current one.
k8s_versions=(1.29.0 1.33.0)
# Pinned so that a new release of the tool (or of its schemas) cannot change the verdict.
tool_version=1.37.0

venv="${SWIFTDUP_K8S_VENV:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/swiftdup-venv}"
if [[ "$("$venv/bin/kubernetes-validate" --version 2>/dev/null || true)" != "$tool_version" ]]; then
    echo "validate-k8s: installing kubernetes-validate==$tool_version into $venv" >&2
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "kubernetes-validate==$tool_version"
fi

shopt -s nullglob
manifests=()
for f in "$dir"/*.yaml "$dir"/*.yml; do
    [[ "$(basename "$f")" == kustomization.y*ml ]] || manifests+=("$f")
done
if ((${#manifests[@]} == 0)); then
    echo "validate-k8s: no manifests in $dir" >&2
    exit 1
fi

failed=0
for v in "${k8s_versions[@]}"; do
    # The tool prints one line per document: INFO (passed), WARN (no schema), ERROR.
    if ! out="$("$venv/bin/kubernetes-validate" --kubernetes-version "$v" --strict "${manifests[@]}" 2>&1)"; then
        failed=1
    fi
    printf '%s\n' "$out"
    if grep -q '^WARN' <<<"$out"; then
        echo "validate-k8s: a document above was not validated (unknown kind or apiVersion)" >&2
        failed=1
    fi
done

# kustomization.yaml has no schema in the tool: check its shape and that every resource it
# lists is a file here (and so was validated above).
for k in "$dir"/kustomization.y*ml; do
    if ! "$venv/bin/python" - "$k" <<'EOF'
import os, sys, yaml
path = sys.argv[1]
with open(path) as f:
    doc = yaml.safe_load(f)
errors = []
if not isinstance(doc, dict):
    errors.append("not a mapping")
    doc = {}
if doc.get("apiVersion") != "kustomize.config.k8s.io/v1beta1" or doc.get("kind") != "Kustomization":
    errors.append("apiVersion/kind must be kustomize.config.k8s.io/v1beta1 Kustomization")
known = {"apiVersion", "kind", "resources", "labels", "commonLabels", "commonAnnotations",
         "namespace", "namePrefix", "nameSuffix", "images", "secretGenerator",
         "configMapGenerator", "generatorOptions", "patches", "replicas", "components"}
for key in doc:
    if key not in known:
        errors.append(f"unknown key {key!r}")
resources = doc.get("resources") or []
if not resources:
    errors.append("no resources")
for r in resources:
    if not isinstance(r, str) or not os.path.isfile(os.path.join(os.path.dirname(path), r)):
        errors.append(f"resource {r!r} is not a file next to it")
if len(set(resources)) != len(resources):
    errors.append("a resource is listed twice")
for e in errors:
    print(f"ERROR {os.path.basename(path)}: {e}")
if not errors:
    print(f"INFO {os.path.basename(path)} passed (resources: {', '.join(resources)})")
sys.exit(1 if errors else 0)
EOF
    then
        failed=1
    fi
done

# The PrometheusRule (a CRD: no schema in the tool): its shape, by hand. Which metrics it
# names is tests/it/k8s.rs's job.
for r in "$dir"/monitoring/*.yaml; do
    if ! "$venv/bin/python" - "$r" <<'EOF'
import os, sys, yaml
path = sys.argv[1]
with open(path) as f:
    doc = yaml.safe_load(f)
errors = []
if doc.get("apiVersion") != "monitoring.coreos.com/v1" or doc.get("kind") != "PrometheusRule":
    errors.append("apiVersion/kind must be monitoring.coreos.com/v1 PrometheusRule")
if not (doc.get("metadata") or {}).get("name"):
    errors.append("no metadata.name")
groups = (doc.get("spec") or {}).get("groups") or []
if not groups:
    errors.append("no spec.groups")
keys = {"alert", "expr", "for", "labels", "annotations"}
for g in groups:
    if set(g) - {"name", "interval", "rules"} or not g.get("name") or not g.get("rules"):
        errors.append(f"group {g.get('name')!r}: needs name and rules, nothing else")
    for rule in g.get("rules") or []:
        if set(rule) - keys:
            errors.append(f"rule {rule.get('alert')!r}: unknown keys {set(rule) - keys}")
        if not rule.get("alert") or not str(rule.get("expr", "")).strip():
            errors.append(f"rule {rule.get('alert')!r}: needs alert and expr")
for e in errors:
    print(f"ERROR {os.path.basename(path)}: {e}")
if not errors:
    print(f"INFO {os.path.basename(path)} passed ({sum(len(g['rules']) for g in groups)} rules)")
sys.exit(1 if errors else 0)
EOF
    then
        failed=1
    fi
done

if ((failed)); then
    echo "validate-k8s: FAILED" >&2
    exit 1
fi
echo "validate-k8s: ${#manifests[@]} manifests valid for Kubernetes ${k8s_versions[*]}"
