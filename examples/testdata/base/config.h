/* Configuration: includes nothing. */
#pragma once
#define CONFIG_DEBUG 1
#define CONFIG_NAME "demo"
