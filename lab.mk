# The docker-compose lab (lab/README.md). Included by the Makefile.
#   make lab              build what is missing, start, wait for Ready, write lab/kubeconfig
#   make lab DB=postgres  the same with PostgreSQL as the store
#   make lab-down         stop and remove the lab, keep its data
#   make lab-down ARGS=--volumes   ... and DELETE its data (volumes, /var/lib/storagelab-lab)
#   make lab-images       (re)build the images; offline from apt sources unless LAB_BASE=registry
#   make lab-test         run every demo under examples/ against the lab
.PHONY: lab lab-down lab-images lab-test

lab: $(STAMP)
	@DB=$(DB) lab/lab.sh up

lab-down:
	@lab/lab.sh down $(ARGS)

lab-images: $(STAMP)
	@lab/lab.sh images

lab-test:
	@lab/lab.sh test
