/* policyapi: REST for the policy engine under /apis/cocod.io/v1 —
 * policies/{hook} (GET the active source, PUT a new version), .../versions,
 * .../versions/{version}, .../rollback, and decisions?hook=&subject=&limit=.
 * All admin-only. */
#ifndef COCOD_POLICYAPI_H
#define COCOD_POLICYAPI_H

#include "api.h"
#include "policy.h"

int policyapi_register(api *a, policy *p, struct err *e);

#endif
