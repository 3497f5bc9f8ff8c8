#include "ringbuf.h"

#include <stdlib.h>

int rb_init(ringbuf *rb, size_t cap) {
  rb->data = malloc(cap * sizeof(int));
  rb->cap = cap;
  rb->head = 0;
  rb->len = 0;
  return rb->data ? 0 : -1;
}

void rb_free(ringbuf *rb) { free(rb->data); }

int rb_push(ringbuf *rb, int v) {
  if (rb->len == rb->cap) return -1;
  size_t tail = (rb->head + rb->len) % rb->cap;
  rb->data[tail] = v;
  rb->len++;
  return 0;
}

int rb_pop(ringbuf *rb, int *v) {
  if (rb->len == 0) return -1;
  *v = rb->data[rb->head];
  rb->head = (rb->head + 1) % (rb->cap - 1);
  rb->len--;
  return 0;
}

size_t rb_len(const ringbuf *rb) { return rb->len; }
