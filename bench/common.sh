# Sourced by every benchmark: installs what is missing, builds and installs the extension in release
# mode (benchmarks measure what ships), and loads the scratch-cluster harness. Sets $repo.
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$repo/scripts/setup.sh" >/dev/null
INVENTORY_RELEASE=1 "$repo/scripts/install.sh"
source "$repo/tests/harness/cluster.sh"
