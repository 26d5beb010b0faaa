#!/usr/bin/env bash
# Installs a nodesage air-gap bundle on the disconnected side (this file is
# install.sh at the top of the bundle made by scripts/airgap-bundle.sh).
#
#   ./install.sh --verify-only
#   ./install.sh --registry REGISTRY [--model ID] [--delivery METHOD]
#                (ID: one of models/MODELS; defaults to the first)
#                [--no-push] [--no-apply]
#
# 1. Verifies every file against SHA256SUMS (always first; stops on a mismatch).
# 2. Pushes the bundled images to REGISTRY (e.g. registry.site.internal:5000
#    or registry.site.internal/platform) with skopeo, else docker load/tag/push.
#    --no-push when the images are already there.
# 3. Writes site/kustomization.yaml: the air-gap overlay with the site's
#    registry names, the model delivery METHOD and the model ID, renders it to
#    site/rendered.yaml and applies it with kubectl (--no-apply: render only).
#
# METHOD (daemonset/components): hostpath (default; stage models/ on every
# node as /var/lib/nodesage/models), image-init, image-volume (model images
# pushed in step 2), pvc (a ReadOnlyMany claim filled once from models/).
set -euo pipefail

self="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
usage() {
  sed -n '2,22p' "$self" | sed 's/^# \{0,1\}//'
  exit "${1:-2}"
}

cd "$(dirname "$self")"
verify_only=0 registry="" model="" delivery="hostpath" push=1 apply=1
while [ $# -gt 0 ]; do
  case "$1" in
    --verify-only) verify_only=1; shift ;;
    --registry) registry="${2%/}"; shift 2 ;;
    --model) model="$2"; shift 2 ;;
    --delivery) delivery="$2"; shift 2 ;;
    --no-push) push=0; shift ;;
    --no-apply) apply=0; shift ;;
    -h|--help) usage 0 ;;
    *) echo "install: unknown argument $1" >&2; usage ;;
  esac
done

# 1. Nothing is used before every file is checked.
if ! sha256sum -c --quiet SHA256SUMS; then
  echo "install: the bundle is damaged or was changed: the files above do not match SHA256SUMS" >&2
  exit 1
fi
echo "install: $(wc -l < SHA256SUMS) files verified against SHA256SUMS"
if [ "$verify_only" = 1 ]; then exit 0; fi

[ -n "$registry" ] || { echo "install: --registry is required (the site registry the nodes pull from)" >&2; exit 2; }
case "$delivery" in hostpath|image-init|image-volume|pvc) ;; *) echo "install: --delivery must be hostpath, image-init, image-volume or pvc" >&2; exit 2 ;; esac
version="$(sed -n 's/^  "version": "\([^"]*\)",$/\1/p' bundle.json)"
# models/MODELS: "<id> <file> <NODESAGE_MODEL value>" per bundled model.
model_value=""
if [ -f models/MODELS ]; then
  line="$(if [ -n "$model" ]; then grep "^$model " models/MODELS || true; else head -n 1 models/MODELS; fi)"
  if [ -n "$model" ] && [ -z "$line" ]; then echo "install: --model $model is not in this bundle (models/MODELS)" >&2; exit 2; fi
  if [ -n "$line" ]; then model="${line%% *}"; model_value="${line##* }"; fi
fi

# 2. Images to the site registry.
push_image() { # archive, destination
  if command -v skopeo >/dev/null 2>&1; then
    skopeo copy "docker-archive:$1" "docker://$2"
  elif command -v docker >/dev/null 2>&1; then
    local loaded
    loaded="$(docker load -q -i "$1" | sed -n 's/^Loaded image: //p' | head -n 1)"
    docker tag "$loaded" "$2"
    docker push "$2"
  else
    echo "install: skopeo or docker is needed to push $1 (or use --no-push after mirroring it)" >&2
    exit 1
  fi
}
if [ "$push" = 1 ]; then
  shopt -s nullglob
  archives=(images/*.tar)
  if [ ${#archives[@]} -eq 0 ]; then
    echo "install: the bundle holds no images; mirror nodesage/nodesage:$version to $registry yourself"
  fi
  for a in "${archives[@]}"; do
    case "$(basename "$a")" in
      nodesage.tar) push_image "$a" "$registry/nodesage/nodesage:$version" ;;
      model-*.tar) id="$(basename "$a" .tar)"; push_image "$a" "$registry/nodesage/model:${id#model-}" ;;
    esac
  done
fi

# 3. The site overlay.
mkdir -p site
{
  echo "# Written by install.sh: the site's registry names and model delivery ($delivery)."
  echo "apiVersion: kustomize.config.k8s.io/v1beta1"
  echo "kind: Kustomization"
  echo "resources:"
  if [ "$delivery" = hostpath ]; then
    echo "  - ../manifests/daemonset/overlays/airgap"
  else
    echo "  - ../manifests/daemonset/overlays/cpu"
    echo "components:"
    echo "  - ../manifests/daemonset/components/model-$delivery"
  fi
  echo "images:"
  echo "  - name: nodesage/nodesage"
  echo "    newName: $registry/nodesage/nodesage"
  echo "    newTag: \"$version\""
  echo "  - name: nodesage/model"
  echo "    newName: $registry/nodesage/model"
  if [ -n "$model_value" ]; then
    echo "    newTag: \"$model\""
    echo "patches:"
    echo "  - target:"
    echo "      kind: DaemonSet"
    echo "      labelSelector: app.kubernetes.io/name=nodesage"
    echo "    patch: |-"
    echo "      apiVersion: apps/v1"
    echo "      kind: DaemonSet"
    echo "      metadata:"
    echo "        name: nodesage"
    echo "      spec:"
    echo "        template:"
    echo "          spec:"
    echo "            containers:"
    echo "              - name: nodesage"
    echo "                env:"
    echo "                  - name: NODESAGE_MODEL"
    echo "                    value: \"$model_value\""
  fi
} > site/kustomization.yaml
kubectl kustomize site > site/rendered.yaml
echo "install: site/kustomization.yaml and site/rendered.yaml written (delivery $delivery, model ${model:-none})"
if [ "$apply" = 1 ]; then
  kubectl apply -k site
fi
if [ "$delivery" = hostpath ] || [ "$delivery" = pvc ]; then
  echo "install: stage the models: on every node (hostpath) or once into the claim (pvc), run"
  echo "         nodesage model import $(pwd)/models/<file>.gguf   (it verifies the .sha256 that travels with it)"
fi
