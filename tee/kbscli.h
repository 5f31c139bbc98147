/* kbscli: the KBS's command-line tools.
 *
 *   cocod secret put REPO/TYPE/TAG FILE|-   store a resource (sealed by the daemon)
 *   cocod secret rm REPO/TYPE/TAG
 *   cocod secret ls                         names only
 *   cocod reference-value add NAME VALUE... | get NAME
 *                                           Trustee RVPS "sample" messages
 *   cocod sim-evidence --report-data HEX [--host-data HEX] [--measurement HEX]
 *                      [--data-dir DIR]
 *
 * `secret` and `reference-value` talk to the running daemon's admin endpoints like the other
 * client commands (server, CA and token from <data-dir>/kubeconfig).
 * `sim-evidence` prints Trustee-shaped SNP evidence signed by the box's
 * sim chain (sealed in the store; created if absent), for tests and for
 * developing against the KBS without a VM.  Exit: 0, 1 failure, 2 usage. */
#ifndef COCOD_KBSCLI_H
#define COCOD_KBSCLI_H

int kbscli_secret(int argc, char **argv);
int kbscli_sim_evidence(int argc, char **argv);
int kbscli_reference_value(int argc, char **argv);

#endif
