// The application: includes reach almost every file.
#include <util/io.h>
#include "local.h"

static const char* kBanner = "#include <base/list.h> is only a string";

int main(int argc, char** argv) {
  util::Reader reader;
  char buffer[16];
  return reader.read(buffer, sizeof(buffer)) + run_app(argc, argv);
}
