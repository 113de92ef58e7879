"""The seed's seven templates: their main scripts are package files next to this module."""
