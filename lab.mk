# The docker-compose lab (lab/README.md). Included by the Makefile.
#   make lab              build what is missing or stale, start, wait for Ready, write lab/kubeconfig
#   make lab DB=postgres  the same with PostgreSQL as the store
#   make lab-stop         stop it as a machine shuts down (pods, nodes, servers); keep everything
#   make lab-start        start a stopped lab again and wait for Ready
#   make lab-down         stop and remove the lab, keep its data
#   make lab-down ARGS=--volumes   ... and DELETE its data (volumes, /var/lib/storagelab-lab)
#   make lab-images       (re)build the images; offline from apt sources unless LAB_BASE=registry
#   make lab-test         run every demo under examples/, then the reliability checks
#                         (examples/reliability: stop/start, NFS server outage, a node down);
#                         WHAT=demos or WHAT=reliability runs one kind
.PHONY: lab lab-stop lab-start lab-down lab-images lab-test

lab: $(STAMP)
	@DB=$(DB) lab/lab.sh up

lab-stop:
	@lab/lab.sh stop

lab-start:
	@lab/lab.sh start

lab-down:
	@lab/lab.sh down $(ARGS)

lab-images: $(STAMP)
	@lab/lab.sh images

lab-test:
	@lab/lab.sh test $(WHAT)
