      * EOD-TOTALS: the mainframe's end-of-day control totals, one record
      * per business day, transaction code, currency and direction.
      * EBCDIC (cp037), fixed 30-byte records, no RDW.
       01  EOD-TOTAL.
           05  BUS-DATE          PIC 9(8).
           05  TXN-CODE          PIC X(4).
           05  CURRENCY          PIC X(3).
           05  DR-CR             PIC X(1).
           05  TXN-COUNT         PIC 9(7).
           05  TXN-AMOUNT        PIC S9(13)V99 COMP-3.
