"""ISO 20022 messages: XSD-typed values, validation, a schema-ordered writer."""
from formats.iso20022.codec import Iso20022Codec
from formats.iso20022.component import COMPONENT
from formats.iso20022.schema import Catalog, message_id

__all__ = ["COMPONENT", "Catalog", "Iso20022Codec", "message_id"]
