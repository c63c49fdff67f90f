# Site settings shared by every job in jobs/ (sourced by jobs/env/cpu.sh and jobs/env/gpu.sh).
# Each line sets a default only: a value already in the submitting environment wins, so
# `NCCL_DEBUG=INFO sbatch ...` needs no edit here. Copy this directory, edit it for your site
# and point RESP_ENV_FILE at your copy (see docs/slurm.md).
# shellcheck shell=bash

# Modules (site-specific; uncomment and adapt). resp needs MPI, parallel HDF5 and OpenBLAS at
# run time, plus CUDA and NCCL for GPU builds — the same versions it was built with.
# module load openmpi/4.1 hdf5/1.10-mpi openblas
# module load cuda/12 nccl

# HDF5 file locking fails or hangs on many Lustre/NFS/GPFS mounts ("unable to lock file").
# resp writes each checkpoint once, from one job, atomically (tmp + rename): locking buys nothing.
export HDF5_USE_FILE_LOCKING=${HDF5_USE_FILE_LOCKING:-FALSE}

# CPU threads per rank: what Slurm gave the task (--cpus-per-task). resp uses OMP_NUM_THREADS
# for its OpenMP regions and for OpenBLAS.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-${SLURM_CPUS_PER_TASK:-1}}
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-$OMP_NUM_THREADS}
# Pinning OpenMP threads (OMP_PROC_BIND=close) helps only where srun binds each task to its
# own cores (TaskPlugin=task/affinity or task/cgroup, --cpu-bind=cores); without task binding
# every rank would pin its threads to the same first cores. Enable it per site:
# export OMP_PROC_BIND=close OMP_PLACES=cores
