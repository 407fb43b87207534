      * BONDCASH-REQ: pay a holder the redemption (BC01), a coupon
      * (BC02) or an early encashment before maturity (BC03) of a bond
      * held in custody.  EBCDIC cp037.
       01  BONDCASH-REQ.
           05  TXN-CODE          PIC X(4).
               88  REDEMPTION    VALUE 'BC01'.
               88  COUPON        VALUE 'BC02'.
               88  EARLY-ENCASH  VALUE 'BC03'.
           05  TRACE-NO          PIC X(16).
           05  ISIN              PIC X(12).
           05  HOLDER-ACCT       PIC X(20).
           05  HOLDING           PIC 9(9) COMP.
           05  AMOUNT            PIC S9(13)V99 COMP-3.
           05  CURRENCY          PIC X(3).
           05  PAY-DATE          PIC 9(8).
