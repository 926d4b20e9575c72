// mlsysim command-line tool (the driver lives in driver.cpp, shared with the Python module).
#include "command.hpp"

int main(int argc, char** argv) { return mlsysim::cli::run(argc, argv); }
