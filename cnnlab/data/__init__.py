"""Data sets: the official layouts, image folders, downloads with checksums, and validation splits."""
from .catalog import DATASET_NAMES, SOURCES
from .dataset import ImageDataset, folder_facts, input_spec, load_dataset, stratified_split, train_images

__all__ = ["DATASET_NAMES", "SOURCES", "ImageDataset", "folder_facts", "input_spec", "load_dataset", "stratified_split",
           "train_images"]
