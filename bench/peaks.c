/* Machine peaks for bench/: the GFLOP/s of both matrix-product engines on a big square, called
 * directly (oneDNN's f32 matmul, kexue's products; OpenBLAS sgemm, PyTorch's), and memory-copy
 * GB/s (read + write bytes per second, T threads each copying its slice of a 256 MiB buffer).
 * Prints one JSON line.
 * Usage: peaks THREADS [N] */
#include <cblas.h>
#include <dnnl.h>
#include <dnnl_debug.h>
#include <omp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

extern void openblas_set_num_threads(int);

#define RUNS 7 /* timed runs after one warm-up; the median is reported */

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp(const void* a, const void* b) {
  double x = *(const double*)a, y = *(const double*)b;
  return x < y ? -1 : x > y;
}

/* One warm-up call of run(ctx), then the median seconds of RUNS timed calls. */
static double median_seconds(void (*run)(void*), void* ctx) {
  double t[RUNS];
  run(ctx);
  for (int r = 0; r < RUNS; ++r) {
    double t0 = now();
    run(ctx);
    t[r] = now() - t0;
  }
  qsort(t, RUNS, sizeof(double), cmp);
  return t[RUNS / 2];
}

/* Lets the previous engine's threads stop spinning (OpenBLAS's for ~0.1 s) before the next is timed. */
static void settle(void) {
  struct timespec ts = {0, 300 * 1000 * 1000};
  nanosleep(&ts, NULL);
}

typedef struct { int n; const float *a, *b; float* c; } Square;

static void sgemm_run(void* p) {
  Square* s = (Square*)p;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, s->n, s->n, s->n, 1.f, s->a, s->n, s->b, s->n, 0.f, s->c, s->n);
}

#define DNNL_OK(call)                                                         \
  do {                                                                        \
    dnnl_status_t st_ = (call);                                               \
    if (st_ != dnnl_success) {                                                \
      fprintf(stderr, "peaks: %s: %s\n", #call, dnnl_status2str(st_));        \
      exit(3);                                                                \
    }                                                                         \
  } while (0)

typedef struct { dnnl_primitive_t product; dnnl_stream_t stream; dnnl_exec_arg_t args[3]; } Matmul;

static void matmul_run(void* p) {
  Matmul* m = (Matmul*)p;
  DNNL_OK(dnnl_primitive_execute(m->product, m->stream, 3, m->args));
  DNNL_OK(dnnl_stream_wait(m->stream));
}

/* Median seconds of oneDNN's f32 matmul c = a·b, every operand plain row-major [n, n] (the
 * layout kexue's matmul hands it), on the OpenMP threads set by the caller. */
static double onednn_seconds(const Square* s) {
  dnnl_engine_t engine;
  Matmul m;
  dnnl_memory_desc_t md;
  dnnl_matmul_desc_t desc;
  dnnl_primitive_desc_t pd;
  dnnl_memory_t mem[3];
  const dnnl_dims_t dims = {s->n, s->n};
  void* data[3] = {(void*)s->a, (void*)s->b, s->c};
  const int arg[3] = {DNNL_ARG_SRC, DNNL_ARG_WEIGHTS, DNNL_ARG_DST};
  DNNL_OK(dnnl_engine_create(&engine, dnnl_cpu, 0));
  DNNL_OK(dnnl_stream_create(&m.stream, engine, dnnl_stream_default_flags));
  DNNL_OK(dnnl_memory_desc_init_by_tag(&md, 2, dims, dnnl_f32, dnnl_ab));
  DNNL_OK(dnnl_matmul_desc_init(&desc, &md, &md, NULL, &md));
  DNNL_OK(dnnl_primitive_desc_create(&pd, &desc, NULL, engine, NULL));
  DNNL_OK(dnnl_primitive_create(&m.product, pd));
  for (int i = 0; i < 3; ++i) {
    DNNL_OK(dnnl_memory_create(&mem[i], &md, engine, data[i]));
    m.args[i].arg = arg[i];
    m.args[i].memory = mem[i];
  }
  double sec = median_seconds(matmul_run, &m);
  for (int i = 0; i < 3; ++i) dnnl_memory_destroy(mem[i]);
  dnnl_primitive_destroy(m.product);
  dnnl_primitive_desc_destroy(pd);
  dnnl_stream_destroy(m.stream);
  dnnl_engine_destroy(engine);
  return sec;
}

typedef struct { char* dst; const char* src; size_t n; } Job;
static void* copy_job(void* p) {
  Job* j = (Job*)p;
  memcpy(j->dst, j->src, j->n);
  return NULL;
}

typedef struct { char* dst; const char* src; size_t bytes; int threads; } Copy;

/* One copy of the buffer, each of the threads copying its slice. */
static void copy_run(void* p) {
  Copy* c = (Copy*)p;
  pthread_t th[256];
  Job jobs[256];
  size_t chunk = c->bytes / c->threads;
  for (int i = 0; i < c->threads; ++i) {
    jobs[i].dst = c->dst + i * chunk; jobs[i].src = c->src + i * chunk;
    jobs[i].n = i == c->threads - 1 ? c->bytes - i * chunk : chunk;
    pthread_create(&th[i], NULL, copy_job, &jobs[i]);
  }
  for (int i = 0; i < c->threads; ++i) pthread_join(th[i], NULL);
}

int main(int argc, char** argv) {
  int threads = argc > 1 ? atoi(argv[1]) : 1;
  int n = argc > 2 ? atoi(argv[2]) : 2048;
  if (threads < 1 || threads > 256 || n < 64) return 2;
  openblas_set_num_threads(threads);
  omp_set_num_threads(threads);
  float* a = malloc(sizeof(float) * n * n);
  float* b = malloc(sizeof(float) * n * n);
  float* c = malloc(sizeof(float) * n * n);
  for (long i = 0; i < (long)n * n; ++i) { a[i] = (float)((i * 7) % 13) / 13.f; b[i] = (float)((i * 5) % 11) / 11.f; c[i] = 0; }
  Square sq = {n, a, b, c};
  double flop = 2.0 * n * n * (double)n;
  double sgemm_s = median_seconds(sgemm_run, &sq);
  settle();
  double onednn_s = onednn_seconds(&sq);
  settle();

  size_t bytes = (size_t)256 << 20;
  char* src = malloc(bytes);
  char* dst = malloc(bytes);
  memset(src, 1, bytes);
  memset(dst, 2, bytes);
  Copy cp = {dst, src, bytes, threads};
  double copy_s = median_seconds(copy_run, &cp);
  printf("{\"sgemmN\": %d, \"sgemmGflops\": %.3f, \"sgemmMs\": %.3f, \"onednnGflops\": %.3f, \"onednnMs\": %.3f, "
         "\"copyBytes\": %zu, \"copyGBs\": %.3f, \"copyMs\": %.3f, \"threads\": %d}\n",
         n, flop / sgemm_s / 1e9, sgemm_s * 1e3, flop / onednn_s / 1e9, onednn_s * 1e3, bytes, 2.0 * bytes / copy_s / 1e9, copy_s * 1e3, threads);
  free(a); free(b); free(c); free(src); free(dst);
  return 0;
}
