/*
 * mw_explain -- "milter-warden test": the engine on a described session,
 * offline.  See milter-warden(8).
 */
#ifndef MW_EXPLAIN_H
#define MW_EXPLAIN_H

/*
 * mw_explain_main -- argv[0] is "test"; returns the exit status: 0
 * accepted, 2 rejected, 3 tempfailed, 4 discarded, 5 quarantined, 1 usage
 * or configuration error.
 */
int mw_explain_main(int argc, char **argv, const char *default_conf);

#endif
