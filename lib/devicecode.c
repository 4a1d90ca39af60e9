#include "config.h"
#include "devicecode.h"
