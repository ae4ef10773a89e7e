/* Machine peaks for bench/: OpenBLAS sgemm GFLOP/s on a big square (called directly, as the
 * reference kexue's matmul is measured against) and memory-copy GB/s (read + write bytes per
 * second, T threads each copying its slice of a 256 MiB buffer). Prints one JSON line.
 * Usage: peaks THREADS [N] */
#include <cblas.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

extern void openblas_set_num_threads(int);

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp(const void* a, const void* b) {
  double x = *(const double*)a, y = *(const double*)b;
  return x < y ? -1 : x > y;
}

typedef struct { char* dst; const char* src; size_t n; } Job;
static void* copy_job(void* p) {
  Job* j = (Job*)p;
  memcpy(j->dst, j->src, j->n);
  return NULL;
}

int main(int argc, char** argv) {
  int threads = argc > 1 ? atoi(argv[1]) : 1;
  int n = argc > 2 ? atoi(argv[2]) : 2048;
  if (threads < 1 || threads > 256 || n < 64) return 2;
  openblas_set_num_threads(threads);
  float* a = malloc(sizeof(float) * n * n);
  float* b = malloc(sizeof(float) * n * n);
  float* c = malloc(sizeof(float) * n * n);
  for (long i = 0; i < (long)n * n; ++i) { a[i] = (float)((i * 7) % 13) / 13.f; b[i] = (float)((i * 5) % 11) / 11.f; c[i] = 0; }
  double t[7];
  for (int r = 0; r < 7; ++r) {
    double t0 = now();
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.f, a, n, b, n, 0.f, c, n);
    t[r] = now() - t0;
  }
  qsort(t + 1, 6, sizeof(double), cmp);
  double gflops = 2.0 * n * n * (double)n / t[3] / 1e9;

  size_t bytes = (size_t)256 << 20;
  char* src = malloc(bytes);
  char* dst = malloc(bytes);
  memset(src, 1, bytes);
  memset(dst, 2, bytes);
  double ct[9];
  pthread_t th[256];
  Job jobs[256];
  size_t chunk = bytes / threads;
  for (int r = 0; r < 9; ++r) {
    double t0 = now();
    for (int i = 0; i < threads; ++i) {
      jobs[i].dst = dst + i * chunk; jobs[i].src = src + i * chunk;
      jobs[i].n = i == threads - 1 ? bytes - i * chunk : chunk;
      pthread_create(&th[i], NULL, copy_job, &jobs[i]);
    }
    for (int i = 0; i < threads; ++i) pthread_join(th[i], NULL);
    ct[r] = now() - t0;
  }
  qsort(ct + 1, 8, sizeof(double), cmp);
  double gbs = 2.0 * bytes / ct[4] / 1e9;
  printf("{\"sgemmN\": %d, \"sgemmGflops\": %.3f, \"sgemmMs\": %.3f, \"copyBytes\": %zu, \"copyGBs\": %.3f, \"copyMs\": %.3f, \"threads\": %d}\n",
         n, gflops, t[3] * 1e3, bytes, gbs, ct[4] * 1e3, threads);
  free(a); free(b); free(c); free(src); free(dst);
  return 0;
}
