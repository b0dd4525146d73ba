"""Traffic control (net/sched/): egress qdiscs, the clsact qdisc and the bpf classifier.

sch_generic.py   the Qdisc object, noqueue, qdisc_run() and the watchdog,
                 default qdiscs (dev_activate())
sch_api.py       tc qdisc add/change/replace/del and tc class on the kernel
                 side: lookups, grafting, the dump order
sch_fifo.py      pfifo, bfifo
sch_tbf.py       the token bucket filter
sch_htb.py       the hierarchical token bucket: classes, borrowing, classify

sch_ingress.py   the clsact qdisc and the TC hooks of the datapath
                 (sch_handle_ingress, sch_handle_egress: net/core/dev.c)
cls_api.py       filter chains: tcf_proto by priority, tcf_classify, and the
                 kernel side of `tc filter add|replace|del`
cls_bpf.py       the bpf classifier: programs in direct-action mode or as
                 classid classifiers
"""
