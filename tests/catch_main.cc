// The single Catch2 main for all test binaries: compiled once, linked everywhere.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
