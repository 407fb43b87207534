      * MF-RSP: the mainframe's standard answer record (all services).
      * EBCDIC (cp037), 2-byte big-endian length prefix on the wire.
       01  MF-RSP.
           05  TRACE-NO          PIC X(16).
           05  RESP-CODE         PIC X(2).
           05  HOST-REF          PIC X(28).
           05  AMOUNT            PIC S9(13)V99 COMP-3.
           05  CURRENCY          PIC X(3).
           05  MESSAGE-TEXT      PIC X(40).
