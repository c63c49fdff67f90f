# Site settings of GPU jobs (jobs/prune-1node-8gpu.sbatch, jobs/prune-multinode-8gpu.sbatch).
# Sourced by the job script; values already in the environment win.
# shellcheck shell=bash
# shellcheck source=jobs/env/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# NCCL: WARN prints problems only; INFO prints the chosen transports/rings once per
# communicator (use it when the first all-reduce hangs or inter-node bandwidth is low).
export NCCL_DEBUG=${NCCL_DEBUG:-WARN}

# The network interface NCCL uses for its bootstrap and, without InfiniBand, for data. NCCL
# picks one itself; set it when that pick is wrong (a docker bridge, a management network), e.g.
#   NCCL_SOCKET_IFNAME=ib0        (IP over InfiniBand)
#   NCCL_SOCKET_IFNAME=^lo,docker (anything but these)
# Ask your site which interface carries the high-speed network (`ip -br addr` on a node).
if [[ -n ${RESP_NCCL_SOCKET_IFNAME:-} ]]; then
  export NCCL_SOCKET_IFNAME=$RESP_NCCL_SOCKET_IFNAME
fi

# InfiniBand adapters (only when NCCL's automatic choice is wrong), e.g. mlx5_0,mlx5_1:
# export NCCL_IB_HCA=mlx5
