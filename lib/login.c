#include "config.h"
#include "login.h"
