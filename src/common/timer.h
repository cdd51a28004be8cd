// timer.h: wall-clock seconds from a monotonic clock, for progress output and statistics
// (never for assertions in tests).
#pragma once

namespace rw {

double wall_seconds();  // monotonic, arbitrary origin

// Peak resident set size of this process in bytes (from getrusage), 0 if unknown.
long long peak_rss_bytes();

// Memory this node can still give (MemAvailable from /proc/meminfo), 0 if unknown.
long long available_memory_bytes();

}  // namespace rw
