// layout.h: how a sequence is split over the ranks of a ring; defined in src/common/ring_layout.h
// (io/ selects token runs too, and may include only src/common/).
#pragma once
#include "src/common/ring_layout.h"
