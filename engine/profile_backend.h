// ProfilingBackend: a Backend that forwards every op to another one and times it (wall clock,
// after the inner backend's synchronize(), so GPU ops count their execution, not their launch).
// Engine::open puts it around the device's backend when the environment variable M1_PROFILE is
// set (not "0"); the table of ops goes to stderr when the engine closes, one line per op and
// shape, so a decode step (T=1 rows) reads apart from prefill chunks.
// Decision: a decorator rather than timers inside model.cpp or the kernels: the graph and every
// device stay free of profiling code, and the same table comes from the CPU and the CUDA backend.
// The synchronize() per op serializes a GPU; profile for the split between ops, not the total.
#pragma once
#include <memory>

#include "engine/backend.h"

namespace m1::engine {

// True when M1_PROFILE is set to anything but "" or "0".
bool profiling_requested();

// Wraps `inner`; the returned backend prints its table to stderr when destroyed.
std::unique_ptr<Backend> make_profiling_backend(std::unique_ptr<Backend> inner);

}  // namespace m1::engine
