#pragma once

// The only door to sofia-sip headers; include it from registrar/sip/*.cc only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#include <sofia-sip/msg_addr.h>
#include <sofia-sip/nta.h>
#include <sofia-sip/nta_stateless.h>
#include <sofia-sip/nta_tport.h>
#include <sofia-sip/sip.h>
#include <sofia-sip/sip_header.h>
#include <sofia-sip/sip_status.h>
#include <sofia-sip/sip_tag.h>
#include <sofia-sip/su.h>
#include <sofia-sip/su_log.h>
#include <sofia-sip/su_tag.h>
#include <sofia-sip/su_wait.h>
#include <sofia-sip/tport.h>
#include <sofia-sip/tport_tag.h>
#include <sofia-sip/url.h>
#pragma GCC diagnostic pop

// Exported by libsofia-sip-ua but declared only in its private headers.
extern "C" {
extern su_log_t nta_log[];
extern su_log_t tport_log[];
// sofia's hook applied to every clock reading (su_time0.c).
extern void (*_su_time)(su_time_t* tv);
}

namespace sipwake::registrar {
// nta marks responses it generated itself (timeouts, transport errors) with
// this msg flag (NTA_INTERNAL_MSG in sofia's private nta_internal.h).
constexpr unsigned kNtaInternalMessageFlag = 1u << 15;
}  // namespace sipwake::registrar
