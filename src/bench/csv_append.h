// csv_append.h: one row appended to a CSV file that several benchmark runs share. The header
// is written when the file is new; an existing file must carry the same header (a different
// one means another version's columns: refused, never mixed). Each append rewrites the file
// through a temporary and a rename under an exclusive lock on the directory, so a reader or a
// killed run never sees half a row and concurrent runs never lose one. Call on one rank only.
#pragma once
#include <string>

namespace rw::bench {

// Throws InputError when the row could not be appended: the directory is missing or not
// writable, or the file's header differs. check_only: test that now, append nothing.
void append_csv_row(const std::string& path, const std::string& header, const std::string& row,
                    bool check_only = false);

}  // namespace rw::bench
