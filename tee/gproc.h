/* gproc: child processes of the guest agent.  The agent blocks SIGCHLD
 * (it reads it from a signalfd), so every child gets an empty signal mask
 * and default dispositions back before exec; stdio are given as fds (-1:
 * /dev/null). */
#ifndef COCOD_GPROC_H
#define COCOD_GPROC_H

#include <sys/types.h>

/* Starts argv[0] (a path) with the given stdio; returns the pid or -1. */
pid_t gproc_spawn(const char *const argv[], int in, int out, int errfd);

/* Starts and waits for it; returns the wait status or -1. */
int gproc_run(const char *const argv[], int in, int out, int errfd);

/* gproc_run with the child's address space laid out without randomization
 * (personality ADDR_NO_RANDOMIZE, inherited across exec until someone
 * resets it).  Under TCG, QEMU finds code it translated before only at the
 * same virtual address, so a dynamically linked program whose libraries
 * land elsewhere at every exec is translated anew every time: crun starts
 * in ~45 ms this way instead of ~110 ms.  Only for trusted helpers that do
 * not run workload code (see ocispec's personality). */
int gproc_run_fixed_layout(const char *const argv[], int in, int out, int errfd);

/* gproc_spawn with that layout. */
pid_t gproc_spawn_fixed_layout(const char *const argv[], int in, int out, int errfd);

/* waitpid that retries on EINTR. */
int gproc_wait(pid_t pid, int *status);

#endif
