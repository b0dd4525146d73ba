"""Traffic control (net/sched/): the clsact qdisc and the bpf classifier.

sch_ingress.py   the clsact qdisc and the TC hooks of the datapath
                 (sch_handle_ingress, sch_handle_egress: net/core/dev.c)
cls_api.py       filter chains: tcf_proto by priority, tcf_classify, and the
                 kernel side of `tc filter add|replace|del`
cls_bpf.py       the bpf classifier: programs in direct-action mode or as
                 classid classifiers
"""
