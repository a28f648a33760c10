/*
 * ChaCha20-Poly1305 (IETF) throughput of libsodium called from C: the native ceiling that the
 * JavaScript bindings in bench/suites/aead.ts are compared against. Payloads up to 1024 bytes,
 * 32-byte AD, fixed key and nonce.
 *
 *   aead [min_ms [rounds]]     (defaults: 300 ms per round, 5 rounds)
 *     For each payload size (64, 255, 1024 bytes) and direction: warm-up, then `rounds` rounds
 *     of at least `min_ms` each; prints one JSON object with the median ops/s of each case:
 *     {"seal_64":ops,"open_64":ops,...,"open_1024":ops}
 *
 *   aead --serve
 *     Lets a caller time its own rounds interleaved with this program's (bench/suites/aead.ts
 *     does, so that noise from other processes hits C and JavaScript alike). Reads commands,
 *     one per line, and answers each with one line (ops/s, or "error: ..."):
 *       warm <seal|open> <bytes> <ms>   warm up this case, size its batch, print ops/s
 *       run  <seal|open> <bytes> <ms>   one timed round of at least ms, print ops/s
 *     Exits at end of input.
 *
 * Built by bench/lib.ts: gcc -O2 -o .build/aead aead.c $(pkg-config --cflags --libs libsodium)
 */
#define _POSIX_C_SOURCE 199309L
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define AD_BYTES 32
#define MAX_PAYLOAD 1024
#define MAX_ROUNDS 50

static unsigned char key[crypto_aead_chacha20poly1305_ietf_KEYBYTES];
static unsigned char nonce[crypto_aead_chacha20poly1305_ietf_NPUBBYTES];
static unsigned char ad[AD_BYTES];
static unsigned char plain[MAX_PAYLOAD];
static unsigned char sealed[MAX_PAYLOAD + crypto_aead_chacha20poly1305_ietf_ABYTES];
static unsigned char out_sealed[MAX_PAYLOAD + crypto_aead_chacha20poly1305_ietf_ABYTES];
static unsigned char out_plain[MAX_PAYLOAD];

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void seal(size_t len) {
  unsigned long long clen;
  crypto_aead_chacha20poly1305_ietf_encrypt(out_sealed, &clen, plain, len, ad, AD_BYTES, NULL, nonce, key);
}

static void open_(size_t len) {
  unsigned long long mlen;
  if (crypto_aead_chacha20poly1305_ietf_decrypt(out_plain, &mlen, NULL, sealed, len + crypto_aead_chacha20poly1305_ietf_ABYTES,
                                                ad, AD_BYTES, nonce, key) != 0) {
    fprintf(stderr, "aead: decrypt of a valid %zu-byte message failed\n", len);
    exit(1);
  }
}

/* Runs op(len) in batches until at least `seconds` have passed; returns ops/s. */
static double run_for(void (*op)(size_t), size_t len, long batch, double seconds) {
  long ops = 0;
  double t0 = now_s(), t;
  do {
    for (long i = 0; i < batch; i++) op(len);
    ops += batch;
    t = now_s();
  } while (t - t0 < seconds);
  return (double)ops / (t - t0);
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Ops per clock read so that one batch takes ~1 ms, from a measured rate. */
static long batch_for(double rate) {
  long batch = (long)(rate / 1000.0);
  return batch < 1 ? 1 : batch;
}

static double warmup_s(double min_s) {
  return min_s / 3 > 0.05 ? min_s / 3 : 0.05;
}

/* Makes `sealed` hold `plain[0..len)` sealed, for open. */
static void prepare(size_t len) {
  unsigned long long clen;
  crypto_aead_chacha20poly1305_ietf_encrypt(sealed, &clen, plain, len, ad, AD_BYTES, NULL, nonce, key);
}

static double measure(void (*op)(size_t), size_t len, double min_s, int rounds) {
  /* Warm-up (caches, CPU frequency), also sizing the batch. */
  long batch = batch_for(run_for(op, len, 1, warmup_s(min_s)));
  double results[MAX_ROUNDS];
  for (int r = 0; r < rounds; r++) results[r] = run_for(op, len, batch, min_s);
  qsort(results, (size_t)rounds, sizeof results[0], cmp_double);
  return rounds % 2 ? results[rounds / 2] : (results[rounds / 2 - 1] + results[rounds / 2]) / 2;
}

static int serve(void) {
  /* Batch per (direction, length) once warmed; 0 = not warmed yet. */
  static long batches[2][MAX_PAYLOAD + 1];
  char line[256], cmd[16], dir[16];
  size_t prepared = (size_t)-1;
  while (fgets(line, sizeof line, stdin)) {
    double ms;
    unsigned long len;
    if (sscanf(line, "%15s %15s %lu %lf", cmd, dir, &len, &ms) != 4 || len > MAX_PAYLOAD || !(ms > 0) ||
        (strcmp(cmd, "warm") != 0 && strcmp(cmd, "run") != 0) || (strcmp(dir, "seal") != 0 && strcmp(dir, "open") != 0)) {
      printf("error: bad command (want: warm|run seal|open <bytes 0..%d> <ms>)\n", MAX_PAYLOAD);
      fflush(stdout);
      continue;
    }
    int is_open = dir[0] == 'o';
    void (*op)(size_t) = is_open ? open_ : seal;
    if (prepared != len) {
      prepare(len);
      prepared = len;
    }
    long *batch = &batches[is_open][len];
    double rate;
    if (cmd[0] == 'w') {
      rate = run_for(op, len, 1, ms / 1000.0);
      *batch = batch_for(rate);
    } else {
      rate = run_for(op, len, *batch ? *batch : 1, ms / 1000.0);
    }
    if (is_open && memcmp(out_plain, plain, len) != 0) {
      printf("error: decrypt round trip mismatch at %lu bytes\n", len);
      fflush(stdout);
      return 1;
    }
    printf("%.0f\n", rate);
    fflush(stdout);
  }
  return 0;
}

int main(int argc, char **argv) {
  if (sodium_init() < 0) {
    fprintf(stderr, "aead: sodium_init failed\n");
    return 1;
  }
  randombytes_buf(key, sizeof key);
  randombytes_buf(nonce, sizeof nonce);
  randombytes_buf(ad, sizeof ad);
  randombytes_buf(plain, sizeof plain);
  if (argc > 1 && strcmp(argv[1], "--serve") == 0) return serve();

  double min_ms = argc > 1 ? atof(argv[1]) : 300.0;
  int rounds = argc > 2 ? atoi(argv[2]) : 5;
  if (min_ms <= 0 || rounds < 1 || rounds > MAX_ROUNDS) {
    fprintf(stderr, "usage: %s [min_ms>0 [rounds 1..%d]] | --serve\n", argv[0], MAX_ROUNDS);
    return 2;
  }
  static const size_t sizes[] = {64, 255, 1024};
  printf("{");
  for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
    size_t len = sizes[i];
    prepare(len);
    double s = measure(seal, len, min_ms / 1000.0, rounds);
    double o = measure(open_, len, min_ms / 1000.0, rounds);
    if (memcmp(out_plain, plain, len) != 0) {
      fprintf(stderr, "aead: decrypt round trip mismatch at %zu bytes\n", len);
      return 1;
    }
    printf("%s\"seal_%zu\":%.0f,\"open_%zu\":%.0f", i ? "," : "", len, s, len, o);
    fflush(stdout);
  }
  printf("}\n");
  return 0;
}
