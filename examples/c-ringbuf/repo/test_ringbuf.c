/* Tests: ./test_ringbuf NAME runs one test (exit 0 = pass); no argument runs all. */
#include <stdio.h>
#include <string.h>

#include "ringbuf.h"

#define CHECK(c) do { if (!(c)) { fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c); return 1; } } while (0)

static int test_push_pop(void) {
  ringbuf rb;
  CHECK(rb_init(&rb, 4) == 0);
  CHECK(rb_push(&rb, 1) == 0);
  CHECK(rb_push(&rb, 2) == 0);
  int v = 0;
  CHECK(rb_pop(&rb, &v) == 0 && v == 1);
  CHECK(rb_pop(&rb, &v) == 0 && v == 2);
  CHECK(rb_pop(&rb, &v) == -1);
  rb_free(&rb);
  return 0;
}

static int test_full(void) {
  ringbuf rb;
  CHECK(rb_init(&rb, 2) == 0);
  CHECK(rb_push(&rb, 1) == 0);
  CHECK(rb_push(&rb, 2) == 0);
  CHECK(rb_push(&rb, 3) == -1);
  CHECK(rb_len(&rb) == 2);
  rb_free(&rb);
  return 0;
}

static int test_wraparound(void) {
  ringbuf rb;
  CHECK(rb_init(&rb, 3) == 0);
  int v = 0, next_in = 0, next_out = 0;
  while (next_in < 3) CHECK(rb_push(&rb, next_in++) == 0);
  for (int round = 0; round < 10; round++) { /* FIFO order must survive the wrap */
    CHECK(rb_pop(&rb, &v) == 0);
    CHECK(v == next_out);
    next_out++;
    CHECK(rb_push(&rb, next_in++) == 0);
  }
  rb_free(&rb);
  return 0;
}

static const struct { const char *name; int (*fn)(void); } tests[] = {
    {"test_push_pop", test_push_pop}, {"test_full", test_full}, {"test_wraparound", test_wraparound}};

int main(int argc, char **argv) {
  int failed = 0, found = 0;
  for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) {
    if (argc > 1 && strcmp(argv[1], tests[i].name) != 0) continue;
    found = 1;
    int r = tests[i].fn();
    printf("%s %s\n", r ? "FAIL" : "ok  ", tests[i].name);
    failed |= r;
  }
  if (!found) { fprintf(stderr, "no test named %s\n", argv[1]); return 2; }
  return failed;
}
