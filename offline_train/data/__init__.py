"""Dataset loaders for training: VidVRD / VidOR JSON folders and Action Genome pickles -> VideoAnnotation lists."""
from offline_train.data.action_genome import AGVideo, ag_predicate_groups, load_action_genome, parse_action_genome
from offline_train.data.label_map import LabelMap, remap_annotation
from offline_train.data.registry import (DatasetConfig, dataset_vocabularies, label_maps, load_dataset,
                                         load_dataset_config, predicate_groups)
from offline_train.data.safe_pickle import UnsafePickleError, load_safe_pickle
from offline_train.data.vidvrd_dataset import find_annotation_files, load_vidvrd_dataset

__all__ = [
    "AGVideo", "ag_predicate_groups", "load_action_genome", "parse_action_genome", "LabelMap", "remap_annotation",
    "DatasetConfig", "dataset_vocabularies", "label_maps", "load_dataset", "load_dataset_config", "predicate_groups",
    "UnsafePickleError", "load_safe_pickle", "find_annotation_files", "load_vidvrd_dataset",
]
