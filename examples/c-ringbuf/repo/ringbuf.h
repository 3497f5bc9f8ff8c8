/* A fixed-capacity ring buffer of ints. */
#ifndef RINGBUF_H
#define RINGBUF_H
#include <stddef.h>

typedef struct {
  int *data;
  size_t cap;   /* slots */
  size_t head;  /* next slot to read */
  size_t len;   /* items stored */
} ringbuf;

int rb_init(ringbuf *rb, size_t cap);
void rb_free(ringbuf *rb);
int rb_push(ringbuf *rb, int v); /* 0 ok, -1 full */
int rb_pop(ringbuf *rb, int *v); /* 0 ok, -1 empty */
size_t rb_len(const ringbuf *rb);
#endif
