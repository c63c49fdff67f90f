# Site settings of CPU jobs (jobs/smoke-cpu.sbatch). Sourced by the job script.
# shellcheck shell=bash
# shellcheck source=jobs/env/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# OpenMPI transports between ranks. Unset = OpenMPI chooses (InfiniBand/UCX between nodes,
# shared memory inside one). On a single machine without a fast network these are quiet and
# fast; uncomment when OpenMPI warns about missing devices:
# export OMPI_MCA_pml=ob1 OMPI_MCA_btl=self,vader,tcp
