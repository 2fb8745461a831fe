/* The fast-path functions of DPDK are `static inline` in its headers (or macros, or a
 * thread-local): not symbols of any library. This shim exports one plain function per
 * operation Rouge needs, compiled by build.rs with the `cc` crate. */
#ifndef ROUGE_DPDK_SHIM_H
#define ROUGE_DPDK_SHIM_H

#include <stdint.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

uint16_t rouge_eth_rx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n);
uint16_t rouge_eth_tx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n);
struct rte_mbuf *rouge_pktmbuf_alloc(struct rte_mempool *mp);
int rouge_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs, unsigned count);
void rouge_pktmbuf_free(struct rte_mbuf *m);
void *rouge_pktmbuf_mtod(struct rte_mbuf *m);
uint16_t rouge_pktmbuf_data_len(const struct rte_mbuf *m);
uint32_t rouge_pktmbuf_pkt_len(const struct rte_mbuf *m);
uint16_t rouge_pktmbuf_nb_segs(const struct rte_mbuf *m);
char *rouge_pktmbuf_append(struct rte_mbuf *m, uint16_t len);
uint16_t rouge_pktmbuf_tailroom(const struct rte_mbuf *m);
int rouge_errno(void);
unsigned rouge_lcore_id(void);

#endif
