#include "config.h"
#include "policy.h"
