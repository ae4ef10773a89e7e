/* Open MPI's own MPI_Allreduce, timed from C: the reference for kexue's binding (bench/src/dist.ts).
 * An in-place float32 sum of one buffer per size, as kx.dist.allReduce does for a one-tensor bucket;
 * after a warm-up, ROUNDS calls, each after a barrier. Rank 0 prints one JSON line per size:
 * {"bytes", "seconds" (the median), "best" (the fastest)}.
 * Usage: mpirun -np N allreduce ROUNDS BYTES... */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp(const void* a, const void* b) {
  double x = *(const double*)a, y = *(const double*)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  const int rounds = argc > 1 ? atoi(argv[1]) : 5;
  double* times = malloc(sizeof(double) * (size_t)rounds);
  for (int a = 2; a < argc; ++a) {
    const size_t bytes = (size_t)atoll(argv[a]);
    const int count = (int)(bytes / sizeof(float));
    float* buf = malloc(bytes);
    for (int i = 0; i < count; ++i) buf[i] = (float)(i % 7);
    MPI_Allreduce(MPI_IN_PLACE, buf, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    for (int r = 0; r < rounds; ++r) {
      MPI_Barrier(MPI_COMM_WORLD);
      const double t0 = MPI_Wtime();
      MPI_Allreduce(MPI_IN_PLACE, buf, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
      times[r] = MPI_Wtime() - t0;
    }
    qsort(times, (size_t)rounds, sizeof(double), cmp);
    if (rank == 0) printf("{\"bytes\": %zu, \"seconds\": %.9f, \"best\": %.9f}\n", bytes, times[rounds / 2], times[0]);
    fflush(stdout);
    free(buf);
  }
  free(times);
  MPI_Finalize();
  return 0;
}
