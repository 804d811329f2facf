/* rtload --self-test: round-trips every frame the generator writes or
 * reads through the encoders and decoders and checks them against the
 * contract's field lists, the XMPP serialisations and the RFC 6455
 * handshake example. */
#ifndef RTLOAD_SELFTEST_H
#define RTLOAD_SELFTEST_H

/* Returns the process exit status: 0 when every check passed, 1 if not. */
int selftest_run(void);

#endif
