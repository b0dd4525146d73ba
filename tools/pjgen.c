// SPDX-License-Identifier: GPL-2.0
/* pjgen: the netns lab's traffic generator and receiver (harness/drivers/generator.py).
 *
 * Runs in the tester namespace. Sends each stream's frames (cycled in the order
 * harness.traffic.stream_frames() gives) from its tester port at the stream's rate,
 * writing the payload tag into the last 16 bytes of the UDP payload: "<HHIQ" magic
 * 0x4A50, stream id, sequence number, CLOCK_MONOTONIC ns (harness/traffic.py). The UDP
 * checksum is fixed incrementally (RFC 1624), or left 0 if the frame's is 0.
 * Receives on the ports of the spec's rx line (none: it only sends, and the DUT's
 * counters say what arrived) through a TPACKET_V2 RX ring each and counts per port and,
 * by the tag, per stream: packets, bytes, latency, out-of-order and duplicates.
 * Latency is the frame's ring timestamp (tpacket_rcv() in net/packet/af_packet.c:
 * skb->tstamp or the time it was put in the ring, CLOCK_REALTIME, made monotonic by
 * the offset between the clocks at start) less the tag's time, which is the send
 * time of the batch the frame went in. Taking the time when the receiver thread
 * reads the ring instead added milliseconds of scheduling delay on a loaded machine.
 *
 * Rate: each stream's n-th packet is due at start + n / pps (CLOCK_MONOTONIC); the
 * sender sleeps (clock_nanosleep, absolute) until the earliest due packet when it is
 * further than SPIN_NS away and spins otherwise, then sends every due packet of a
 * stream in one batch (at most BATCH). Bursts in a multi-burst stream start `ibg` ns
 * after the previous burst's last packet was due.
 *
 * TX: "sendmmsg" (batches of BATCH frames) or "ring" (a TPACKET_V2 TX ring kicked by
 * send()), both with PACKET_QDISC_BYPASS; benchmarks/lab.py measures which is faster.
 *
 * Input (file named by argv[1]): lines
 *   tx sendmmsg|ring
 *   duration_ns N                  continuous streams stop after N ns
 *   rx [IFNAME...]                 ports to receive on (a port only sent from has no RX ring)
 *   stream ID IFNAME PPS MODE COUNT BURSTS IBG_NS NFRAMES [START_NS]   MODE: c, s (single burst), m;
 *                                  START_NS: the stream's first packet is due this long after the start
 *   HEX                            NFRAMES lines: the frames to cycle through
 * Output on stdout, one JSON object per line: {"event":"sent",...} when every stream
 * has ended, then the statistics once reception ends: when every tagged packet sent has
 * arrived, or when "stop" is read on stdin (the caller saw the DUT drain; read while
 * sending, it ends the streams there). Per stream, what arrived is also counted by
 * the port it arrived on ("rx_ports"), and its sequence errors as TRex's flow stats
 * name them (dropped, seq_too_high, seq_too_low besides out_of_order and duplicates).
 *
 * Sequences and latencies are counted as harness.traffic's SequenceChecker and
 * LatencyRecorder count them (TRex's rules; jitter RFC 3550), so the harness turns
 * these statistics into its own without seeing each packet.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <linux/if_packet.h>
#include <math.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define TAG_LEN 16
#define TAG_MAGIC 0x4A50
#define BATCH 64
#define SPIN_NS 50000
#define MAX_FRAME 4096
#define MAX_PORTS 16
#define MAX_STREAMS 256
/* Each port's RX ring: 32 MiB of slots of 2048 bytes, or 4096 when a stream's frames
 * would not fit (a frame longer than its slot is cut, and its tag with it). The more
 * slots, the longer the receiver may be kept off a CPU before the ring overflows. */
#define RX_RING_BYTES (32u << 20)
#define RX_SLOT_HEADROOM 128 /* tpacket2_hdr, sockaddr_ll, alignment */
#define TX_FRAME_SIZE 4096
#define TX_FRAMES 512
#define HIST_BUCKETS 200 /* 20 decades of microseconds, 10 leading digits each */

struct frame {
	uint8_t *data;
	uint16_t len;
	int tag_off;  /* offset of the tag in the frame, -1: no tag (not UDP or payload too short) */
	int udp_off;  /* offset of the UDP header */
	int csum_fix; /* the UDP checksum is set: fix it after writing the tag */
};

struct stream {
	uint16_t id;
	int port; /* index into ports[] */
	double pps;
	char mode;
	uint64_t count, bursts, ibg_ns, start_ns; /* start_ns: after the run starts (0 if not given) */
	struct frame *frames;
	uint32_t nframes;
	/* sender */
	uint64_t sent, obytes, burst_start_ns, burst_sent, bursts_done;
	int done;
	/* receiver */
	uint64_t ipackets, ibytes, out_of_order, duplicates, dropped, seq_too_high, seq_too_low;
	uint64_t port_ipackets[MAX_PORTS], port_ibytes[MAX_PORTS]; /* by the port it arrived on */
	uint64_t lat_n, lat_min, lat_max, lat_sum;
	double jitter_ns;
	int64_t last_transit;
	uint32_t expected_seq;
	uint64_t hist[HIST_BUCKETS];
};

struct port {
	char name[IFNAMSIZ];
	int ifindex;
	int tx_fd; /* sendmmsg socket or TX ring socket */
	uint8_t *tx_ring;
	unsigned tx_head;
	int rx; /* named on the rx line: receive and count here */
	int rx_fd;
	uint8_t *rx_ring;
	unsigned rx_head;
	uint64_t ipackets, ibytes, untagged;
};

static struct port ports[MAX_PORTS];
static int nports;
static struct stream streams[MAX_STREAMS];
static int nstreams;
static int use_ring;
static uint64_t duration_ns;
static atomic_int tx_done, stop_requested;
static uint64_t tx_start_ns, tx_end_ns;
static int64_t realtime_offset; /* CLOCK_REALTIME - CLOCK_MONOTONIC at start */
static unsigned rx_slot_size, rx_slots;
static uint64_t last_rx_ns;

static void die(const char *what)
{
	fprintf(stderr, "pjgen: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void fail(const char *message, const char *detail)
{
	fprintf(stderr, "pjgen: %s%s\n", message, detail);
	exit(2);
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static uint64_t realtime_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static int port_index(const char *name)
{
	for (int i = 0; i < nports; i++)
		if (!strcmp(ports[i].name, name))
			return i;
	if (nports == MAX_PORTS)
		fail("too many ports", "");
	struct port *p = &ports[nports];
	snprintf(p->name, sizeof(p->name), "%s", name);
	p->ifindex = if_nametoindex(name);
	if (!p->ifindex)
		die(name);
	p->tx_fd = p->rx_fd = -1;
	return nports++;
}

/* Where the tag goes: the last TAG_LEN bytes of an IPv4/UDP payload (Ethernet, one
 * optional 802.1Q tag), by the IP total length (short frames carry Ethernet padding). */
static void locate_tag(struct frame *f)
{
	const uint8_t *d = f->data;
	int off = 12, ihl, ip_len, udp_len;
	f->tag_off = f->udp_off = -1;
	f->csum_fix = 0;
	if (f->len >= 18 && d[off] == 0x81 && d[off + 1] == 0x00)
		off += 4;
	if (f->len < off + 2 + 20 || d[off] != 0x08 || d[off + 1] != 0x00)
		return;
	off += 2;
	ihl = (d[off] & 0x0f) * 4;
	ip_len = d[off + 2] << 8 | d[off + 3];
	if ((d[off] >> 4) != 4 || d[off + 9] != 17 || (d[off + 6] & 0x3f) || d[off + 7])
		return; /* not UDP, or a fragment */
	if (ihl < 20 || ip_len < ihl + 8 || off + ip_len > f->len)
		return;
	f->udp_off = off + ihl;
	udp_len = d[f->udp_off + 4] << 8 | d[f->udp_off + 5];
	if (udp_len < 8 + TAG_LEN || udp_len > ip_len - ihl)
		return;
	f->tag_off = f->udp_off + udp_len - TAG_LEN;
	f->csum_fix = d[f->udp_off + 6] || d[f->udp_off + 7];
}

/* The one's complement sum of `len` bytes at `off`, as words aligned to `base`. */
static uint32_t csum_bytes(const uint8_t *d, int base, int off, int len)
{
	uint32_t sum = 0;
	for (int i = off; i < off + len; i++)
		sum += ((i - base) & 1) ? d[i] : d[i] << 8;
	return sum;
}

static void write_tag(struct frame *f, uint8_t *out, uint16_t id, uint32_t seq, uint64_t ts)
{
	uint8_t *tag = out + f->tag_off;
	uint32_t old_sum = 0, sum;
	if (f->csum_fix)
		old_sum = csum_bytes(out, f->udp_off, f->tag_off, TAG_LEN);
	uint16_t magic = TAG_MAGIC;
	memcpy(tag, &magic, 2); /* little-endian "<HHIQ" on a little-endian host */
	memcpy(tag + 2, &id, 2);
	memcpy(tag + 4, &seq, 4);
	memcpy(tag + 8, &ts, 8);
	if (!f->csum_fix)
		return;
	/* RFC 1624: HC' = ~(~HC + ~m + m') */
	uint8_t *c = out + f->udp_off + 6;
	sum = (uint16_t)~(c[0] << 8 | c[1]);
	while (old_sum >> 16)
		old_sum = (old_sum & 0xffff) + (old_sum >> 16);
	sum += (uint16_t)~old_sum + csum_bytes(out, f->udp_off, f->tag_off, TAG_LEN);
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	sum = (uint16_t)~sum;
	if (!sum)
		sum = 0xffff; /* RFC 768: a computed 0 is sent as all ones */
	c[0] = sum >> 8;
	c[1] = sum & 0xff;
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

static void parse_frame(const char *hex, struct frame *f)
{
	size_t n = strcspn(hex, "\n") / 2;
	if (n < ETH_HLEN)
		fail("frame too short: ", hex);
	if (n > MAX_FRAME)
		fail("frame too long: ", hex);
	f->data = malloc(n);
	for (size_t i = 0; i < n; i++) {
		int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
		if (hi < 0 || lo < 0)
			fail("frame is not lower-case hex: ", hex);
		f->data[i] = hi << 4 | lo;
	}
	f->len = n;
	locate_tag(f);
}

static void read_spec(const char *path)
{
	FILE *in = fopen(path, "r");
	char *line = NULL, word[32], name[IFNAMSIZ + 1];
	size_t cap = 0;
	if (!in)
		die(path);
	while (getline(&line, &cap, in) > 0) {
		if (sscanf(line, "tx %31s", word) == 1) {
			use_ring = !strcmp(word, "ring");
		} else if (sscanf(line, "duration_ns %" SCNu64, &duration_ns) == 1) {
		} else if (!strncmp(line, "rx", 2) && (line[2] == ' ' || line[2] == '\n')) {
			char *save, *tok = strtok_r(line + 2, " \n", &save);
			for (; tok; tok = strtok_r(NULL, " \n", &save))
				ports[port_index(tok)].rx = 1;
		} else if (!strncmp(line, "stream ", 7)) {
			if (nstreams == MAX_STREAMS)
				fail("too many streams", "");
			struct stream *s = &streams[nstreams++];
			unsigned id;
			char mode;
			int fields = sscanf(line, "stream %u %16s %lf %c %" SCNu64 " %" SCNu64 " %" SCNu64 " %u %" SCNu64,
					    &id, name, &s->pps, &mode, &s->count, &s->bursts, &s->ibg_ns, &s->nframes,
					    &s->start_ns);
			if (fields < 8 || !s->nframes)
				fail("bad stream line: ", line);
			s->id = id;
			s->mode = mode;
			s->port = port_index(name);
			s->frames = calloc(s->nframes, sizeof(*s->frames));
			for (uint32_t i = 0; i < s->nframes; i++) {
				if (getline(&line, &cap, in) <= 0)
					fail("missing frames for stream ", name);
				parse_frame(line, &s->frames[i]);
			}
		} else if (line[0] != '\n') {
			fail("unknown spec line: ", line);
		}
	}
	free(line);
	fclose(in);
}

static int packet_socket(int ifindex, int protocol)
{
	int fd = socket(AF_PACKET, SOCK_RAW, htons(protocol));
	if (fd < 0)
		die("socket(AF_PACKET)");
	struct sockaddr_ll sll = { .sll_family = AF_PACKET, .sll_protocol = htons(protocol), .sll_ifindex = ifindex };
	if (bind(fd, (struct sockaddr *)&sll, sizeof(sll)))
		die("bind");
	return fd;
}

static uint8_t *packet_ring(int fd, int option, unsigned frame_size, unsigned frames)
{
	int version = TPACKET_V2;
	if (setsockopt(fd, SOL_PACKET, PACKET_VERSION, &version, sizeof(version)))
		die("PACKET_VERSION");
	struct tpacket_req req = { .tp_block_size = frame_size * 16, .tp_frame_size = frame_size,
				   .tp_block_nr = frames / 16, .tp_frame_nr = frames };
	if (setsockopt(fd, SOL_PACKET, option, &req, sizeof(req)))
		die(option == PACKET_RX_RING ? "PACKET_RX_RING" : "PACKET_TX_RING");
	uint8_t *ring = mmap(NULL, (size_t)frame_size * frames, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (ring == MAP_FAILED)
		die("mmap");
	return ring;
}

static void open_sockets(void)
{
	int one = 1;
	rx_slot_size = 2048;
	for (int i = 0; i < nstreams; i++)
		for (uint32_t j = 0; j < streams[i].nframes; j++)
			if (streams[i].frames[j].len + RX_SLOT_HEADROOM > rx_slot_size)
				rx_slot_size = 4096;
	rx_slots = RX_RING_BYTES / rx_slot_size;
	for (int i = 0; i < nports; i++) {
		struct port *p = &ports[i];
		if (!p->rx)
			continue;
		/* protocol 0 until the ring exists: nothing queues before counting starts */
		p->rx_fd = packet_socket(p->ifindex, 0);
		if (setsockopt(p->rx_fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof(one)))
			die("PACKET_IGNORE_OUTGOING");
		p->rx_ring = packet_ring(p->rx_fd, PACKET_RX_RING, rx_slot_size, rx_slots);
		struct sockaddr_ll sll = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL),
					   .sll_ifindex = p->ifindex };
		if (bind(p->rx_fd, (struct sockaddr *)&sll, sizeof(sll)))
			die("bind rx");
	}
	for (int i = 0; i < nstreams; i++) {
		struct port *p = &ports[streams[i].port];
		if (p->tx_fd >= 0)
			continue;
		p->tx_fd = packet_socket(p->ifindex, 0);
		if (setsockopt(p->tx_fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof(one)))
			die("PACKET_QDISC_BYPASS");
		if (use_ring)
			p->tx_ring = packet_ring(p->tx_fd, PACKET_TX_RING, TX_FRAME_SIZE, TX_FRAMES);
	}
}

/* sender ------------------------------------------------------------------------- */

/* When the stream's next packet is due, or UINT64_MAX when it has sent everything. */
static uint64_t next_due(struct stream *s)
{
	if (s->done)
		return UINT64_MAX;
	return s->burst_start_ns + (uint64_t)(s->burst_sent * 1e9 / s->pps);
}

static void sent_one(struct stream *s, uint16_t len)
{
	s->sent++;
	s->obytes += len;
	s->burst_sent++;
	if (s->burst_sent == s->count) {
		uint64_t last_due = s->burst_start_ns + (uint64_t)((s->count - 1) * 1e9 / s->pps);
		s->bursts_done++;
		s->burst_start_ns = last_due + s->ibg_ns;
		s->burst_sent = 0;
		if (s->bursts_done == s->bursts)
			s->done = 1;
	}
}

/* Fill `out` with the stream's next frame, tagged; its length. */
static uint16_t next_frame(struct stream *s, uint8_t *out, uint64_t ts)
{
	struct frame *f = &s->frames[s->sent % s->nframes];
	memcpy(out, f->data, f->len);
	if (f->tag_off >= 0)
		write_tag(f, out, s->id, (uint32_t)s->sent, ts);
	return f->len;
}

static void send_mmsg(struct stream *s, unsigned n)
{
	static uint8_t bufs[BATCH][MAX_FRAME];
	struct mmsghdr msgs[BATCH];
	struct iovec iov[BATCH];
	uint16_t lens[BATCH];
	uint64_t ts = now_ns();
	uint64_t seq0 = s->sent;
	for (unsigned i = 0; i < n; i++) {
		struct frame *f = &s->frames[(seq0 + i) % s->nframes];
		memcpy(bufs[i], f->data, f->len);
		if (f->tag_off >= 0)
			write_tag(f, bufs[i], s->id, (uint32_t)(seq0 + i), ts);
		lens[i] = f->len;
		iov[i] = (struct iovec){ bufs[i], f->len };
		msgs[i] = (struct mmsghdr){ .msg_hdr = { .msg_iov = &iov[i], .msg_iovlen = 1 } };
	}
	int fd = ports[s->port].tx_fd;
	for (unsigned i = 0; i < n;) {
		int r = sendmmsg(fd, msgs + i, n - i, 0);
		if (r < 0) {
			/* ENOBUFS: the DUT port's backlog refused it (the port's tx_dropped counts it) */
			if (errno != ENOBUFS && errno != EAGAIN)
				die("sendmmsg");
			r = 1;
		}
		for (int j = 0; j < r; j++)
			sent_one(s, lens[i + j]);
		i += r;
	}
}

static void send_ring(struct stream *s, unsigned n)
{
	struct port *p = &ports[s->port];
	uint64_t ts = now_ns();
	unsigned queued = 0;
	for (; queued < n; queued++) {
		struct tpacket2_hdr *h = (void *)(p->tx_ring + (size_t)p->tx_head * TX_FRAME_SIZE);
		if (h->tp_status != TP_STATUS_AVAILABLE)
			break; /* the ring is full: send what is queued */
		uint8_t *data = (uint8_t *)h + TPACKET2_HDRLEN - sizeof(struct sockaddr_ll);
		h->tp_len = next_frame(s, data, ts);
		sent_one(s, h->tp_len);
		h->tp_status = TP_STATUS_SEND_REQUEST;
		p->tx_head = (p->tx_head + 1) % TX_FRAMES;
	}
	/* blocks until the kernel has handed every queued frame to the device */
	if (send(p->tx_fd, NULL, 0, 0) < 0 && errno != ENOBUFS && errno != EAGAIN)
		die("send (TX ring)");
}

static void run_sender(void)
{
	tx_start_ns = now_ns();
	for (int i = 0; i < nstreams; i++)
		streams[i].burst_start_ns = tx_start_ns + streams[i].start_ns;
	while (!atomic_load(&stop_requested)) { /* "stop" ends the streams early too */
		uint64_t earliest = UINT64_MAX, t = now_ns();
		int sent_any = 0;
		for (int i = 0; i < nstreams; i++) {
			struct stream *s = &streams[i];
			uint64_t due = next_due(s);
			if (due <= t) {
				/* every packet due by now, up to BATCH, and to the end of the burst */
				uint64_t behind = (uint64_t)((t - s->burst_start_ns) * s->pps / 1e9) + 1 - s->burst_sent;
				uint64_t n = behind < BATCH ? behind : BATCH;
				if (n > s->count - s->burst_sent)
					n = s->count - s->burst_sent;
				if (use_ring)
					send_ring(s, n);
				else
					send_mmsg(s, n);
				sent_any = 1;
				due = next_due(s);
			}
			if (due < earliest)
				earliest = due;
		}
		if (earliest == UINT64_MAX)
			break;
		if (sent_any)
			continue;
		t = now_ns();
		if (earliest > t + SPIN_NS) {
			uint64_t wake = earliest - SPIN_NS;
			struct timespec ts = { wake / 1000000000ull, wake % 1000000000ull };
			clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
		}
	}
	tx_end_ns = now_ns();
}

/* receiver ----------------------------------------------------------------------- */

static struct stream *stream_by_id(uint16_t id)
{
	for (int i = 0; i < nstreams; i++)
		if (streams[i].id == id)
			return &streams[i];
	return NULL;
}

/* harness.traffic.histogram_bucket(): the latency's leading digit times its decade
 * (1 us buckets below 10 us, then 10, 20, .. 90, 100, 200, ..), as an index. */
static int hist_bucket(uint64_t us)
{
	int digits = 0;
	while (us >= 10) {
		us /= 10;
		digits++;
	}
	return digits * 10 + (int)us;
}

static uint64_t hist_lower_us(int b)
{
	uint64_t decade = 1;
	for (int i = 0; i < b / 10; i++)
		decade *= 10;
	return (b % 10) * decade;
}

/* harness.traffic.SequenceChecker for one packet: TRex's RXLatency::handle_seq_number. */
static void check_sequence(struct stream *s, uint32_t seq)
{
	uint32_t ahead = seq - s->expected_seq;
	if (ahead == 0) {
		s->expected_seq = seq + 1;
	} else if (ahead < 1u << 31) { /* ahead: the gap is lost so far */
		s->dropped += ahead;
		s->seq_too_high++;
		s->expected_seq = seq + 1;
	} else {
		s->seq_too_low++;
		if (s->expected_seq - seq == 1) {
			s->duplicates++;
		} else { /* late: it was counted lost */
			s->out_of_order++;
			if (s->dropped)
				s->dropped--;
		}
	}
}

static void count_frame(struct port *p, const uint8_t *d, unsigned len, uint64_t rx_ns)
{
	struct frame f = { .data = (uint8_t *)d, .len = len };
	struct stream *s;
	uint16_t magic, id;
	uint32_t seq;
	uint64_t ts;
	p->ipackets++;
	p->ibytes += len;
	if (rx_ns > last_rx_ns)
		last_rx_ns = rx_ns;
	locate_tag(&f);
	if (f.tag_off < 0) {
		p->untagged++;
		return;
	}
	memcpy(&magic, d + f.tag_off, 2);
	memcpy(&id, d + f.tag_off + 2, 2);
	memcpy(&seq, d + f.tag_off + 4, 4);
	memcpy(&ts, d + f.tag_off + 8, 8);
	if (magic != TAG_MAGIC || !(s = stream_by_id(id))) {
		p->untagged++;
		return;
	}
	s->ipackets++;
	s->ibytes += len;
	s->port_ipackets[p - ports]++;
	s->port_ibytes[p - ports] += len;
	check_sequence(s, seq);
	int64_t transit = (int64_t)(rx_ns - ts);
	uint64_t lat = transit > 0 ? (uint64_t)transit : 0;
	if (!s->lat_n || lat < s->lat_min)
		s->lat_min = lat;
	if (lat > s->lat_max)
		s->lat_max = lat;
	s->lat_sum += lat;
	if (s->lat_n) { /* RFC 3550 6.4.1: J += (|D| - J) / 16 */
		int64_t d_ns = transit - s->last_transit;
		s->jitter_ns += ((d_ns < 0 ? -d_ns : d_ns) - s->jitter_ns) / 16;
	}
	s->last_transit = transit;
	s->lat_n++;
	s->hist[hist_bucket(lat / 1000)]++;
}

/* Count every frame the ring holds; how many. */
static unsigned drain_ring(struct port *p)
{
	unsigned n = 0;
	if (!p->rx)
		return 0;
	for (;;) {
		struct tpacket2_hdr *h = (void *)(p->rx_ring + (size_t)p->rx_head * rx_slot_size);
		if (!(h->tp_status & TP_STATUS_USER))
			return n;
		count_frame(p, (uint8_t *)h + h->tp_mac, h->tp_snaplen,
			    (uint64_t)h->tp_sec * 1000000000ull + h->tp_nsec - realtime_offset);
		__atomic_store_n(&h->tp_status, TP_STATUS_KERNEL, __ATOMIC_RELEASE);
		p->rx_head = (p->rx_head + 1) % rx_slots;
		n++;
	}
}

static int all_arrived(void)
{
	uint64_t expected = 0, arrived = 0;
	for (int i = 0; i < nstreams; i++) {
		if (streams[i].frames[0].tag_off < 0)
			return 0; /* untagged streams are only counted per port: wait for "stop" */
		expected += streams[i].sent;
		arrived += streams[i].ipackets - streams[i].duplicates;
	}
	return arrived >= expected;
}

static void *run_receiver(void *arg)
{
	struct pollfd fds[MAX_PORTS];
	(void)arg;
	for (int i = 0; i < nports; i++) /* poll() skips the -1 of a port without a ring */
		fds[i] = (struct pollfd){ .fd = ports[i].rx_fd, .events = POLLIN };
	for (;;) {
		for (int i = 0; i < nports; i++)
			drain_ring(&ports[i]);
		if (atomic_load(&tx_done) && (atomic_load(&stop_requested) || all_arrived())) {
			unsigned more = 0;
			for (int i = 0; i < nports; i++) /* what arrived while deciding */
				more += drain_ring(&ports[i]);
			if (!more)
				return NULL;
			continue;
		}
		poll(fds, nports, 1);
	}
}

static void *watch_stdin(void *arg)
{
	char line[64];
	(void)arg;
	while (fgets(line, sizeof(line), stdin))
		if (!strncmp(line, "stop", 4))
			break;
	atomic_store(&stop_requested, 1); /* "stop", or the caller went away */
	return NULL;
}

/* output ------------------------------------------------------------------------- */

static void print_stats(void)
{
	/* rx_ns: from the start to the last frame received (0: none) */
	printf("{\"event\":\"stats\",\"tx\":\"%s\",\"tx_ns\":%" PRIu64 ",\"rx_ns\":%" PRIu64 ",\"ports\":{",
	       use_ring ? "ring" : "sendmmsg", tx_end_ns - tx_start_ns, last_rx_ns ? last_rx_ns - tx_start_ns : 0);
	for (int i = 0, first = 1; i < nports; i++) {
		struct tpacket_stats stats;
		socklen_t len = sizeof(stats);
		if (!ports[i].rx)
			continue;
		if (getsockopt(ports[i].rx_fd, SOL_PACKET, PACKET_STATISTICS, &stats, &len))
			die("PACKET_STATISTICS");
		printf("%s\"%s\":{\"ipackets\":%" PRIu64 ",\"ibytes\":%" PRIu64 ",\"untagged\":%" PRIu64
		       ",\"ring_drops\":%u}", first ? "" : ",", ports[i].name, ports[i].ipackets, ports[i].ibytes,
		       ports[i].untagged, stats.tp_drops);
		first = 0;
	}
	printf("},\"streams\":[");
	for (int i = 0; i < nstreams; i++) {
		struct stream *s = &streams[i];
		printf("%s{\"id\":%u,\"port\":\"%s\",\"tagged\":%s,\"opackets\":%" PRIu64 ",\"obytes\":%" PRIu64
		       ",\"ipackets\":%" PRIu64 ",\"ibytes\":%" PRIu64 ",\"out_of_order\":%" PRIu64
		       ",\"duplicates\":%" PRIu64 ",\"dropped\":%" PRIu64 ",\"seq_too_high\":%" PRIu64
		       ",\"seq_too_low\":%" PRIu64 ",\"rx_ports\":{",
		       i ? "," : "", s->id, ports[s->port].name, s->frames[0].tag_off >= 0 ? "true" : "false",
		       s->sent, s->obytes, s->ipackets, s->ibytes, s->out_of_order, s->duplicates, s->dropped,
		       s->seq_too_high, s->seq_too_low);
		for (int j = 0, first = 1; j < nports; j++)
			if (ports[j].rx) {
				printf("%s\"%s\":{\"ipackets\":%" PRIu64 ",\"ibytes\":%" PRIu64 "}", first ? "" : ",",
				       ports[j].name, s->port_ipackets[j], s->port_ibytes[j]);
				first = 0;
			}
		printf("},\"latency\":{\"n\":%" PRIu64 ",\"min_ns\":%" PRIu64 ",\"max_ns\":%" PRIu64 ",\"sum_ns\":%" PRIu64
		       ",\"jitter_ns\":%.1f,\"histogram_us\":{", s->lat_n, s->lat_min, s->lat_max, s->lat_sum, s->jitter_ns);
		for (int b = 0, first = 1; b < HIST_BUCKETS; b++)
			if (s->hist[b]) {
				printf("%s\"%" PRIu64 "\":%" PRIu64, first ? "" : ",", hist_lower_us(b), s->hist[b]);
				first = 0;
			}
		printf("}}}");
	}
	printf("]}\n");
	fflush(stdout);
}

int main(int argc, char **argv)
{
	pthread_t receiver, control;
	if (argc != 2)
		fail("usage: pjgen SPEC_FILE", "");
	read_spec(argv[1]);
	realtime_offset = (int64_t)(realtime_ns() - now_ns());
	for (int i = 0; i < nstreams; i++) {
		struct stream *s = &streams[i];
		if (s->pps <= 0 || (s->mode == 'c' && !duration_ns) || (s->mode != 'c' && !s->count))
			fail("a stream needs a positive rate, and a duration (continuous) or a count (bursts)", "");
		if (s->mode == 'c') { /* one burst of every packet due within the duration */
			if (s->start_ns >= duration_ns)
				fail("a continuous stream must start within the duration", "");
			s->count = (uint64_t)ceil((duration_ns - s->start_ns) * s->pps / 1e9);
			s->bursts = 1;
		}
	}
	open_sockets();
	if (pthread_create(&receiver, NULL, run_receiver, NULL) || pthread_create(&control, NULL, watch_stdin, NULL))
		die("pthread_create");
	run_sender();
	uint64_t sent = 0;
	for (int i = 0; i < nstreams; i++)
		sent += streams[i].sent;
	printf("{\"event\":\"sent\",\"opackets\":%" PRIu64 ",\"tx_ns\":%" PRIu64 "}\n", sent, tx_end_ns - tx_start_ns);
	fflush(stdout);
	atomic_store(&tx_done, 1);
	pthread_join(receiver, NULL);
	print_stats();
	return 0;
}
