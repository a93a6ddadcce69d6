#pragma once
#include <base/config.h>

using Handle = int;
enum class Mode { kFast, kSafe };

int run_app(int argc, char** argv);
