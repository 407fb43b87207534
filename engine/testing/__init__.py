"""Test helpers that ship with the engine (real servers, not mocks): see ``nats_server``."""
