// catch_main.cpp: Catch2's main, compiled once for the serial test programs.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
