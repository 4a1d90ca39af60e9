#include "config.h"
#include "userdb.h"
