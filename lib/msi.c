#include "config.h"
#include "msi.h"
