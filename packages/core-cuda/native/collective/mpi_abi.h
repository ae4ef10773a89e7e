// The part of Open MPI's C ABI that kx::dist calls, declared here so that the addon builds without
// MPI's headers and opens libmpi at run time (dlopen). Open MPI's handles are pointers to its
// predefined global objects (MPI_COMM_WORLD is &ompi_mpi_comm_world, MPI_FLOAT &ompi_mpi_float, ...),
// looked up by name with dlsym; the functions and these names have kept their signatures since
// libmpi.so.40 (Open MPI 3.0, 2017). MPICH and its derivatives use integer handles instead: a
// library without `ompi_mpi_comm_world` is refused with E_NO_MPI rather than misread.
#pragma once

namespace kx::dist::mpi {

using Comm = void*;
using Datatype = void*;
using Op = void*;
using Errhandler = void*;

constexpr int kSuccess = 0;            // MPI_SUCCESS
constexpr int kThreadSerialized = 2;   // MPI_THREAD_SERIALIZED
constexpr int kMaxErrorString = 256;   // MPI_MAX_ERROR_STRING (OPAL_MAX_ERROR_STRING)
inline void* in_place() { return reinterpret_cast<void*>(1); }  // MPI_IN_PLACE

using InitializedFn = int (*)(int* flag);
using FinalizedFn = int (*)(int* flag);
using InitThreadFn = int (*)(int* argc, char*** argv, int required, int* provided);
using FinalizeFn = int (*)();
using CommRankFn = int (*)(Comm, int*);
using CommSizeFn = int (*)(Comm, int*);
using CommSetErrhandlerFn = int (*)(Comm, Errhandler);
using AllreduceFn = int (*)(const void* send, void* recv, int count, Datatype, Op, Comm);
using BcastFn = int (*)(void* buffer, int count, Datatype, int root, Comm);
using BarrierFn = int (*)(Comm);
using ErrorStringFn = int (*)(int code, char* text, int* length);
using GetLibraryVersionFn = int (*)(char* text, int* length);

}  // namespace kx::dist::mpi
